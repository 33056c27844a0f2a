//! Printable documents: a small real PDF (what the simulators hand out as
//! labels and TikTok documents) and the merge of many PDFs into one (the
//! day's labels, printed in one go).

use std::collections::HashSet;

use lopdf::content::{Content, Operation};
use lopdf::{dictionary, Dictionary, Document, Object, ObjectId, Stream};

use super::Error;

fn pdf_err(e: lopdf::Error) -> Error {
    Error::Invalid(format!("PDF: {e}"))
}

/// A PDF of `pages` 4×6-inch pages, each with its lines of text (Courier).
pub fn text_pdf(pages: &[Vec<String>]) -> Result<Vec<u8>, Error> {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type1",
        "BaseFont" => "Courier",
    });
    let resources_id = doc.add_object(dictionary! {
        "Font" => dictionary! { "F1" => font_id },
    });
    let mut kids = Vec::new();
    for lines in pages {
        let mut ops = vec![
            Operation::new("BT", vec![]),
            Operation::new("Tf", vec!["F1".into(), 12.into()]),
            Operation::new("TL", vec![16.into()]),
            Operation::new("Td", vec![18.into(), 400.into()]),
        ];
        for l in lines {
            ops.push(Operation::new(
                "Tj",
                vec![Object::string_literal(l.as_str())],
            ));
            ops.push(Operation::new("T*", vec![]));
        }
        ops.push(Operation::new("ET", vec![]));
        let content = Content { operations: ops }.encode().map_err(pdf_err)?;
        let content_id = doc.add_object(Stream::new(dictionary! {}, content));
        let page_id = doc.add_object(dictionary! {
            "Type" => "Page",
            "Parent" => pages_id,
            "Contents" => content_id,
            "Resources" => resources_id,
            "MediaBox" => vec![0.into(), 0.into(), 288.into(), 432.into()],
        });
        kids.push(Object::Reference(page_id));
    }
    let count = kids.len() as i64;
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Kids" => kids,
            "Count" => count,
        }),
    );
    let catalog_id = doc.add_object(dictionary! {
        "Type" => "Catalog",
        "Pages" => pages_id,
    });
    doc.trailer.set("Root", catalog_id);
    let mut out = Vec::new();
    doc.save_to(&mut out)
        .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
    Ok(out)
}

/// The number of pages of a PDF.
pub fn page_count(pdf: &[u8]) -> Result<usize, Error> {
    Ok(Document::load_mem(pdf).map_err(pdf_err)?.get_pages().len())
}

/// A page attribute a page may inherit from its parents.
fn inherited(doc: &Document, page: ObjectId, key: &[u8]) -> Option<Object> {
    let mut current = page;
    let mut seen = HashSet::new();
    while seen.insert(current) {
        let node = doc.get_dictionary(current).ok()?;
        if let Ok(v) = node.get(key) {
            return Some(v.clone());
        }
        current = node.get(b"Parent").ok()?.as_reference().ok()?;
    }
    None
}

/// Merges PDFs, pages in order. A document that cannot be read is an
/// error naming its position (nothing is silently left out).
pub fn merge(pdfs: &[Vec<u8>]) -> Result<Vec<u8>, Error> {
    let mut out = Document::with_version("1.5");
    let pages_id = out.new_object_id();
    let mut next_id = out.max_id + 1;
    let mut kids = Vec::new();
    for (i, bytes) in pdfs.iter().enumerate() {
        let mut doc = Document::load_mem(bytes).map_err(|e| {
            Error::Invalid(format!("document {} is not a readable PDF: {e}", i + 1))
        })?;
        // Resolve what pages inherit before their parents are dropped.
        for page in doc.get_pages().into_values() {
            let mut d: Dictionary = doc.get_dictionary(page).map_err(pdf_err)?.clone();
            for key in [&b"MediaBox"[..], b"CropBox", b"Resources", b"Rotate"] {
                if d.get(key).is_err() {
                    if let Some(v) = inherited(&doc, page, key) {
                        d.set(key.to_vec(), v);
                    }
                }
            }
            doc.objects.insert(page, Object::Dictionary(d));
        }
        doc.renumber_objects_with(next_id);
        next_id = doc.max_id + 1;
        let pages: Vec<ObjectId> = doc.get_pages().into_values().collect();
        let page_set: HashSet<ObjectId> = pages.iter().copied().collect();
        for (id, obj) in doc.objects {
            let kind = obj.type_name().unwrap_or(b"").to_vec();
            match kind.as_slice() {
                b"Catalog" | b"Pages" | b"Outlines" | b"Outline" => {}
                _ if page_set.contains(&id) => {
                    if let Ok(d) = obj.as_dict() {
                        let mut d = d.clone();
                        d.set("Parent", pages_id);
                        out.objects.insert(id, Object::Dictionary(d));
                    }
                }
                _ => {
                    out.objects.insert(id, obj);
                }
            }
        }
        kids.extend(pages.into_iter().map(Object::Reference));
    }
    let count = kids.len() as i64;
    out.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Kids" => kids,
            "Count" => count,
        }),
    );
    out.max_id = next_id;
    let catalog_id = out.add_object(dictionary! {
        "Type" => "Catalog",
        "Pages" => pages_id,
    });
    out.trailer.set("Root", catalog_id);
    let mut bytes = Vec::new();
    out.save_to(&mut bytes)
        .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_pdfs_keep_every_page_in_order() {
        let a = text_pdf(&[vec!["label A".into()]]).unwrap();
        let b = text_pdf(&[vec!["label B".into()], vec!["packing slip B".into()]]).unwrap();
        assert!(a.starts_with(b"%PDF-1.5"));
        assert_eq!(page_count(&a).unwrap(), 1);
        assert_eq!(page_count(&b).unwrap(), 2);
        let m = merge(&[a.clone(), b, a]).unwrap();
        assert_eq!(page_count(&m).unwrap(), 4);
        let doc = Document::load_mem(&m).unwrap();
        let texts: Vec<String> = doc
            .get_pages()
            .keys()
            .map(|n| doc.extract_text(&[*n]).unwrap_or_default())
            .collect();
        assert!(texts[0].contains("label A"), "{texts:?}");
        assert!(texts[1].contains("label B"), "{texts:?}");
        assert!(texts[2].contains("packing slip B"), "{texts:?}");
        assert!(merge(&[b"not a pdf".to_vec()]).is_err());
        assert_eq!(page_count(&merge(&[]).unwrap()).unwrap(), 0);
    }
}
