//! `Data`: the JSON-like values an instance stores (variables, step outputs,
//! action arguments).
//!
//! Why not `serde_json::Value`? Checkpoints are bincode, and bincode cannot
//! decode self-describing types (`deserialize_any`). `Data` is an ordinary
//! enum, so it encodes compactly and round-trips exactly; it converts to and
//! from JSON at the edges and into CEL values for expressions.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub enum Data {
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Data>),
    Map(BTreeMap<String, Data>),
}

impl Data {
    pub fn from_json(v: &serde_json::Value) -> Data {
        use serde_json::Value as J;
        match v {
            J::Null => Data::Null,
            J::Bool(b) => Data::Bool(*b),
            J::Number(n) => match n.as_i64() {
                Some(i) => Data::Int(i),
                None => Data::Float(n.as_f64().unwrap_or(0.0)),
            },
            J::String(s) => Data::Str(s.clone()),
            J::Array(a) => Data::List(a.iter().map(Data::from_json).collect()),
            J::Object(o) => Data::Map(
                o.iter()
                    .map(|(k, v)| (k.clone(), Data::from_json(v)))
                    .collect(),
            ),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Data::Null => J::Null,
            Data::Bool(b) => J::Bool(*b),
            Data::Int(i) => J::from(*i),
            Data::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Data::Str(s) => J::String(s.clone()),
            Data::List(l) => J::Array(l.iter().map(Data::to_json).collect()),
            Data::Map(m) => J::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
        }
    }

    pub fn to_cel(&self) -> cel::Value {
        match self {
            Data::Null => cel::Value::Null,
            Data::Bool(b) => cel::Value::Bool(*b),
            Data::Int(i) => cel::Value::Int(*i),
            Data::Float(f) => cel::Value::Float(*f),
            Data::Str(s) => cel::Value::String(Arc::new(s.clone())),
            Data::List(l) => cel::Value::List(Arc::new(l.iter().map(Data::to_cel).collect())),
            Data::Map(m) => {
                let map: std::collections::HashMap<cel::objects::Key, cel::Value> = m
                    .iter()
                    .map(|(k, v)| (cel::objects::Key::from(k.clone()), v.to_cel()))
                    .collect();
                cel::Value::Map(cel::objects::Map { map: Arc::new(map) })
            }
        }
    }

    /// Converts straight into CEL's runtime representation, without the
    /// intermediate `cel::Value` (this is on the per-step hot path).
    pub fn to_val(&self) -> Box<dyn cel::common::value::Val> {
        use cel::common::types::*;
        match self {
            Data::Null => Box::new(CelNull),
            Data::Bool(b) => Box::new(CelBool::from(*b)),
            Data::Int(i) => Box::new(CelInt::from(*i)),
            Data::Float(f) => Box::new(CelDouble::from(*f)),
            Data::Str(s) => Box::new(CelString::from(s.clone())),
            Data::List(l) => Box::new(CelList::from(
                l.iter().map(Data::to_val).collect::<Vec<_>>(),
            )),
            Data::Map(m) => Box::new(CelMap::from(
                m.iter()
                    .map(|(k, v)| (CelMapKey::from(k.clone()), v.to_val()))
                    .collect::<std::collections::HashMap<_, _>>(),
            )),
        }
    }

    /// A map of entries as a CEL value, without cloning the map first.
    pub fn map_to_val(m: &BTreeMap<String, Data>) -> Box<dyn cel::common::value::Val> {
        use cel::common::types::*;
        Box::new(CelMap::from(
            m.iter()
                .map(|(k, v)| (CelMapKey::from(k.clone()), v.to_val()))
                .collect::<std::collections::HashMap<_, _>>(),
        ))
    }

    /// Converts a CEL result back. Durations become seconds (float),
    /// timestamps Unix seconds, bytes a lossy string; functions and opaque
    /// values have no data form and become null.
    pub fn from_cel(v: &cel::Value) -> Data {
        match v {
            cel::Value::Null => Data::Null,
            cel::Value::Bool(b) => Data::Bool(*b),
            cel::Value::Int(i) => Data::Int(*i),
            cel::Value::UInt(u) => i64::try_from(*u).map_or(Data::Float(*u as f64), Data::Int),
            cel::Value::Float(f) => Data::Float(*f),
            cel::Value::String(s) => Data::Str(s.to_string()),
            cel::Value::Bytes(b) => Data::Str(String::from_utf8_lossy(b).into_owned()),
            cel::Value::List(l) => Data::List(l.iter().map(Data::from_cel).collect()),
            cel::Value::Map(m) => Data::Map(
                m.map
                    .iter()
                    .map(|(k, v)| {
                        let key = match k {
                            cel::objects::Key::String(s) => s.to_string(),
                            cel::objects::Key::Int(i) => i.to_string(),
                            cel::objects::Key::Uint(u) => u.to_string(),
                            cel::objects::Key::Bool(b) => b.to_string(),
                        };
                        (key, Data::from_cel(v))
                    })
                    .collect(),
            ),
            cel::Value::Duration(d) => Data::Float(d.num_milliseconds() as f64 / 1000.0),
            cel::Value::Timestamp(t) => Data::Int(t.timestamp()),
            _ => Data::Null,
        }
    }

    /// Text for string interpolation: strings unquoted, the rest as JSON.
    pub fn render(&self) -> String {
        match self {
            Data::Str(s) => s.clone(),
            Data::Null => String::new(),
            Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.1}"),
            other => other.to_json().to_string(),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Data> {
        match self {
            Data::Map(m) => m.get(key),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Data::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Data::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Data::Int(i) => Some(*i as f64),
            Data::Float(f) => Some(*f),
            _ => None,
        }
    }

    pub fn map<I: IntoIterator<Item = (K, Data)>, K: Into<String>>(it: I) -> Data {
        Data::Map(it.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
}

impl From<&str> for Data {
    fn from(s: &str) -> Data {
        Data::Str(s.to_string())
    }
}

impl From<String> for Data {
    fn from(s: String) -> Data {
        Data::Str(s)
    }
}

impl From<i64> for Data {
    fn from(i: i64) -> Data {
        Data::Int(i)
    }
}

impl From<bool> for Data {
    fn from(b: bool) -> Data {
        Data::Bool(b)
    }
}
