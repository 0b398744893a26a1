//! Comparison of `show channels|calls as json` bodies with the recorded
//! ones: the same row count, the same columns in the same order, the values
//! of every column exact (after uuid mapping) except those that are times,
//! or the caller's random SIP port, which are compared by shape.

use super::{is_uuid, UuidMap};

/// Columns compared by shape only (times of creation).
const BY_SHAPE: &[&str] = &[
    "created",
    "created_epoch",
    "b_created",
    "b_created_epoch",
    "call_created_epoch",
];

/// One row: (column, value) in order.
type Row = Vec<(String, String)>;

/// The row count and the rows, or None if not a row listing.
fn rows(body: &str) -> Option<(u64, Vec<Row>)> {
    #[derive(serde::Deserialize)]
    struct Listing {
        row_count: u64,
        #[serde(default)]
        rows: Vec<super::Pairs>,
    }
    let l: Listing = serde_json::from_str(body).ok()?;
    let rows = l
        .rows
        .into_iter()
        .map(|p| {
            p.0.into_iter()
                .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .collect();
    Some((l.row_count, rows))
}

/// `sofia/external/x@127.0.0.1:5062` without the port (the caller's port is random).
fn without_port(name: &str) -> &str {
    match name.rsplit_once(':') {
        Some((head, port)) if head.contains('@') && port.chars().all(|c| c.is_ascii_digit()) => {
            head
        }
        _ => name,
    }
}

fn shape(s: &str) -> &'static str {
    if s.is_empty() {
        "empty"
    } else if s.chars().all(|c| c.is_ascii_digit()) {
        "digits"
    } else {
        "text"
    }
}

/// Whether `rec` is a `show … as json` listing with rows.
pub fn is_listing(rec: &str) -> bool {
    rec.starts_with("{\"row_count\":") && rec.contains("\"rows\":")
}

/// Mismatches between a recorded listing and the simulator's.
pub fn compare(i: usize, rec: &str, got: &str, map: &mut UuidMap) -> Vec<String> {
    let mut errs = Vec::new();
    let (Some((rn, rrows)), Some((gn, grows))) = (rows(rec), rows(got)) else {
        return vec![format!(
            "frame {i}: show body {got:?} is not a listing like {rec:?}"
        )];
    };
    if rn != gn || rrows.len() != grows.len() {
        return vec![format!(
            "frame {i}: show lists {gn} rows ({} given), recorded {rn} ({})",
            grows.len(),
            rrows.len()
        )];
    }
    if rec.ends_with('\n') != got.ends_with('\n') || !got.starts_with("{\"row_count\":") {
        errs.push(format!(
            "frame {i}: show body layout {got:?} differs from {rec:?}"
        ));
    }
    for (r, (rrow, grow)) in rrows.iter().zip(grows.iter()).enumerate() {
        let rk: Vec<&str> = rrow.iter().map(|(k, _)| k.as_str()).collect();
        let gk: Vec<&str> = grow.iter().map(|(k, _)| k.as_str()).collect();
        if rk != gk {
            errs.push(format!(
                "frame {i} row {r}: columns {gk:?} != recorded {rk:?}"
            ));
            continue;
        }
        for ((k, rv), (_, gv)) in rrow.iter().zip(grow.iter()) {
            if BY_SHAPE.contains(&k.as_str()) {
                if shape(rv) != shape(gv) {
                    errs.push(format!(
                        "frame {i} row {r}: {k} = {gv:?} not shaped like recorded {rv:?}"
                    ));
                }
            } else if is_uuid(rv) {
                if !is_uuid(gv) || !map.pair(rv, gv) {
                    errs.push(format!(
                        "frame {i} row {r}: {k} {gv:?} inconsistent with recorded {rv:?}"
                    ));
                }
            } else if without_port(&map.apply(rv)) != without_port(gv) {
                errs.push(format!("frame {i} row {r}: {k} = {gv:?}, recorded {rv:?}"));
            }
        }
    }
    errs
}
