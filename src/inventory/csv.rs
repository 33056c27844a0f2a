//! The stock CSV: `sku_id,warehouse_id,on_hand[,product_id]`, a header row
//! first, columns in any order. A tiny RFC 4180 subset (quoted fields with
//! `""` escapes, no newlines inside fields) — enough for spreadsheet
//! exports, without a dependency. Parsing collects every problem with its
//! 1-based line number and never panics.

use std::collections::HashSet;

/// The id rule of the inventory, as a message without the error prefix.
fn check_id(what: &str, s: &str) -> Result<(), String> {
    super::check_id(what, s).map_err(|e| match e {
        super::Error::Invalid(m) => m,
        other => other.to_string(),
    })
}

/// One valid data row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub line: usize,
    pub sku: String,
    pub warehouse: Option<String>,
    pub on_hand: u32,
    pub product_id: Option<String>,
}

/// Most rows accepted in one import.
const MAX_ROWS: usize = 200_000;

fn split(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cur.push(c),
            (false, '"') if cur.trim().is_empty() && !was_quoted => {
                cur.clear();
                quoted = true;
                was_quoted = true;
            }
            (false, '"') => return Err("stray quote inside an unquoted field".into()),
            (false, ',') => {
                out.push(std::mem::take(&mut cur).trim().to_string());
                was_quoted = false;
            }
            (false, c) => {
                if was_quoted && !c.is_whitespace() {
                    return Err("text after a closing quote".into());
                }
                cur.push(c);
            }
        }
    }
    if quoted {
        return Err("unterminated quoted field".into());
    }
    out.push(cur.trim().to_string());
    Ok(out)
}

/// The non-blank lines with their 1-based numbers: the header's number
/// and columns, and the data lines after it (a BOM skipped).
#[allow(clippy::type_complexity)]
fn header<'t>(
    text: &'t str,
    expected: &str,
) -> Result<(usize, Vec<String>, impl Iterator<Item = (usize, &'t str)>), Vec<String>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((hline, header)) = lines.next() else {
        return Err(vec![format!(
            "the file is empty; expected a header row {expected}"
        )]);
    };
    let cols = split(header).map_err(|e| vec![format!("line {hline}: {e}")])?;
    Ok((hline, cols, lines))
}

/// Parses the whole file; `Err` lists every problem.
pub fn parse(text: &str) -> Result<Vec<Row>, Vec<String>> {
    let (hline, cols, lines) = header(text, "sku_id,warehouse_id,on_hand")?;
    let mut problems = Vec::new();
    let find = |name: &str| cols.iter().position(|c| c.eq_ignore_ascii_case(name));
    // `item` names the same column: stock belongs to items.
    let (sku_i, wh_i, qty_i, pid_i) = (
        find("sku_id").or_else(|| find("item")),
        find("warehouse_id"),
        find("on_hand"),
        find("product_id"),
    );
    for (name, i) in [
        ("sku_id", sku_i),
        ("warehouse_id", wh_i),
        ("on_hand", qty_i),
    ] {
        if i.is_none() {
            problems.push(format!(
                "line {hline}: the header has no {name} column (columns: sku_id,warehouse_id,on_hand[,product_id])"
            ));
        }
    }
    for c in &cols {
        if !["sku_id", "item", "warehouse_id", "on_hand", "product_id"]
            .iter()
            .any(|k| c.eq_ignore_ascii_case(k))
        {
            problems.push(format!("line {hline}: unknown column {c:?}"));
        }
    }
    let (Some(sku_i), Some(wh_i), Some(qty_i)) = (sku_i, wh_i, qty_i) else {
        return Err(problems);
    };
    let mut seen = HashSet::new();
    let mut rows = Vec::new();
    for (n, line) in lines {
        if rows.len() + problems.len() >= MAX_ROWS {
            problems.push(format!("line {n}: more than {MAX_ROWS} rows in one import"));
            break;
        }
        let fields = match split(line) {
            Ok(f) => f,
            Err(e) => {
                problems.push(format!("line {n}: {e}"));
                continue;
            }
        };
        if fields.len() != cols.len() {
            problems.push(format!(
                "line {n}: {} fields, the header has {}",
                fields.len(),
                cols.len()
            ));
            continue;
        }
        let sku = fields[sku_i].clone();
        if let Err(e) = check_id("sku_id", &sku) {
            problems.push(format!("line {n}: {e}"));
            continue;
        }
        let wh = &fields[wh_i];
        if !wh.is_empty() {
            if let Err(e) = check_id("warehouse_id", wh) {
                problems.push(format!("line {n}: {e}"));
                continue;
            }
        }
        let on_hand = match fields[qty_i].parse::<u32>() {
            Ok(q) => q,
            Err(_) => {
                problems.push(format!(
                    "line {n}: on_hand {:?} is not a whole number from 0 to {}",
                    fields[qty_i],
                    u32::MAX
                ));
                continue;
            }
        };
        let product_id = match pid_i.map(|i| fields[i].clone()) {
            Some(p) if !p.is_empty() => {
                if let Err(e) = check_id("product_id", &p) {
                    problems.push(format!("line {n}: {e}"));
                    continue;
                }
                Some(p)
            }
            _ => None,
        };
        if !seen.insert((sku.clone(), wh.clone())) {
            problems.push(format!(
                "line {n}: SKU {sku} warehouse {wh:?} appears more than once"
            ));
            continue;
        }
        rows.push(Row {
            line: n,
            sku,
            warehouse: (!wh.is_empty()).then(|| wh.clone()),
            on_hand,
            product_id,
        });
    }
    if problems.is_empty() {
        Ok(rows)
    } else {
        Err(problems)
    }
}

/// One valid row of a mapping CSV.
#[derive(Debug, Clone, PartialEq)]
pub struct MappingRow {
    pub line: usize,
    pub sku: String,
    pub item: String,
    pub units: u32,
}

/// Parses a mapping CSV: `sku_id,item,units` (header first, columns in
/// any order, `units` optional and 1 by default). Several rows of one
/// `sku_id` make a bundle. `Err` lists every problem.
pub fn parse_mappings(text: &str) -> Result<Vec<MappingRow>, Vec<String>> {
    let (hline, cols, lines) = header(text, "sku_id,item,units")?;
    let find = |name: &str| cols.iter().position(|c| c.eq_ignore_ascii_case(name));
    let (sku_i, item_i, units_i) = (find("sku_id"), find("item"), find("units"));
    let mut problems = Vec::new();
    for c in &cols {
        if !["sku_id", "item", "units"]
            .iter()
            .any(|k| c.eq_ignore_ascii_case(k))
        {
            problems.push(format!(
                "line {hline}: unknown column {c:?} (columns: sku_id,item[,units])"
            ));
        }
    }
    let (Some(sku_i), Some(item_i)) = (sku_i, item_i) else {
        problems.push(format!(
            "line {hline}: the header needs sku_id and item columns"
        ));
        return Err(problems);
    };
    let mut rows = Vec::new();
    let mut seen = HashSet::new();
    for (n, line) in lines {
        if rows.len() + problems.len() >= MAX_ROWS {
            problems.push(format!("line {n}: more than {MAX_ROWS} rows in one import"));
            break;
        }
        let fields = match split(line) {
            Ok(f) if f.len() == cols.len() => f,
            Ok(f) => {
                problems.push(format!(
                    "line {n}: {} fields, the header has {}",
                    f.len(),
                    cols.len()
                ));
                continue;
            }
            Err(e) => {
                problems.push(format!("line {n}: {e}"));
                continue;
            }
        };
        let (sku, item) = (fields[sku_i].clone(), fields[item_i].clone());
        if let Err(e) = check_id("sku_id", &sku).and_then(|_| check_id("item", &item)) {
            problems.push(format!("line {n}: {e}"));
            continue;
        }
        let units = match units_i.map(|i| fields[i].as_str()) {
            None | Some("") => 1,
            Some(u) => match u.parse::<u32>() {
                Ok(u @ 1..=super::mapping::MAX_UNITS) => u,
                _ => {
                    problems.push(format!(
                        "line {n}: units {u:?} is not a whole number from 1 to {}",
                        super::mapping::MAX_UNITS
                    ));
                    continue;
                }
            },
        };
        if !seen.insert((sku.clone(), item.clone())) {
            problems.push(format!(
                "line {n}: SKU {sku} item {item} appears more than once"
            ));
            continue;
        }
        rows.push(MappingRow {
            line: n,
            sku,
            item,
            units,
        });
    }
    if problems.is_empty() {
        Ok(rows)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_fields_and_column_order() {
        let rows =
            parse("on_hand,sku_id,warehouse_id,product_id\n5,\"A,1\",W1,P\n\n7, B ,,\n").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].sku, "A,1");
        assert_eq!(rows[0].line, 2);
        assert_eq!(rows[0].product_id.as_deref(), Some("P"));
        assert_eq!(rows[1].sku, "B");
        assert_eq!(rows[1].warehouse, None);
        assert_eq!(rows[1].line, 4);
        assert_eq!(split("\"a\"\"b\",c").unwrap(), vec!["a\"b", "c"]);
        assert!(split("\"abc").is_err());
        assert!(split("a\"b").is_err());
    }

    #[test]
    fn mapping_rows_make_bundles_and_report_every_problem() {
        let rows = parse_mappings("item,sku_id,units\nMUG,S1,\nMUG,S2,3\nLID,S2,1\n").unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!((rows[0].units, rows[1].units), (1, 3));
        let e = parse_mappings("sku_id,item,units\nS1,,1\nS2,A,0\nS3,B,x\nS4,C,1\nS4,C,2\n")
            .unwrap_err();
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(parse_mappings("sku_id,units\n").is_err());
        for g in ["", "\"", "sku_id,item\n\"\"\"", "\u{0}"] {
            let _ = parse_mappings(g);
        }
    }

    #[test]
    fn never_panics_on_garbage() {
        for s in [
            "",
            ",,,",
            "\"",
            "sku_id",
            "\u{feff}",
            "a,b\n\"",
            "sku_id,warehouse_id,on_hand\n\"\"\"",
            "\u{0}\n\u{0}",
        ] {
            let _ = parse(s);
        }
    }
}
