//! `--check-results DIR`: what the smoke test asks of a results folder. The three files exist
//! and are not empty, every recall in results.json is a number in [0, 1], and each engine given
//! a floor (`--min-recall hannoy=0.95`) reaches it at its largest ef_search, when it was
//! measured: an index that returns the wrong rows fails.

use std::path::Path;

use serde_json::Value;

use crate::{BenchError, Context};

pub const RESULT_FILES: [&str; 3] = ["results.md", "results.json", "recall_qps.svg"];

pub fn check_results(dir: &Path, floors: &[(String, f64)]) -> Result<(), BenchError> {
    for name in RESULT_FILES {
        let path = dir.join(name);
        let metadata =
            std::fs::metadata(&path).with_context(|| format!("checking {}", path.display()))?;
        if metadata.len() == 0 {
            return Err(BenchError::Data(format!("{} is empty", path.display())));
        }
    }
    let path = dir.join("results.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let json: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let summary = check_json(&json, floors)
        .map_err(|problem| BenchError::Data(format!("{}: {problem}", path.display())))?;
    println!("{}: {summary}", dir.display());
    Ok(())
}

/// Checks a parsed results.json; on success says what it checked.
pub fn check_json(json: &Value, floors: &[(String, f64)]) -> Result<String, String> {
    let engines = json
        .get("engines")
        .and_then(Value::as_array)
        .ok_or("no engines array")?;
    if engines.is_empty() {
        return Err("no engine was measured".to_string());
    }
    for engine in engines {
        let name = engine.get("engine").and_then(Value::as_str).unwrap_or("?");
        let sweep = engine.get("sweep").and_then(Value::as_array);
        if sweep.is_none_or(|sweep| sweep.is_empty()) {
            return Err(format!("engine {name} has no ef_search sweep"));
        }
    }
    let mut recalls = Vec::new();
    collect_recalls(json, "", &mut recalls);
    if recalls.is_empty() {
        return Err("no recall values".to_string());
    }
    for (place, value) in &recalls {
        match value.as_f64() {
            Some(recall) if (0.0..=1.0).contains(&recall) => {}
            _ => return Err(format!("{place} is {value}, not a number in [0, 1]")),
        }
    }
    // hannoy's index lives in the OS page cache only, so a cold query reads it from disk, and
    // one that read nothing means the eviction failed; pgvector's pages can stay in shared
    // buffers, which nothing empties (all of them, for an index smaller than shared_buffers).
    for engine in engines
        .iter()
        .filter(|e| e.get("engine").and_then(Value::as_str) == Some("hannoy"))
    {
        let cold = engine.get("cold").and_then(Value::as_array);
        for point in cold.into_iter().flatten() {
            match point.get("index_pages_mean").and_then(Value::as_f64) {
                Some(pages) if pages > 0.0 => {}
                _ => {
                    return Err(format!(
                        "engine hannoy: a cold point brought no page of the index in: {point}"
                    ))
                }
            }
        }
    }
    let names: Vec<&str> = engines
        .iter()
        .filter_map(|engine| engine.get("engine").and_then(Value::as_str))
        .collect();
    let mut met = Vec::new();
    for (name, floor) in floors {
        let Some(engine) = engines
            .iter()
            .find(|e| e.get("engine").and_then(Value::as_str) == Some(name))
        else {
            met.push(format!("{name} not measured"));
            continue;
        };
        let recall = top_recall(engine).ok_or(format!("engine {name} has no recall_at_k"))?;
        if recall < *floor {
            return Err(format!(
                "engine {name}: recall@k {recall:.4} at its largest ef_search, below the floor {floor}"
            ));
        }
        met.push(format!("{name} recall@k {recall:.4} >= {floor}"));
    }
    let floors = if met.is_empty() {
        String::new()
    } else {
        format!("; {}", met.join(", "))
    };
    Ok(format!(
        "ok: the three files, engines {}, {} recall values all in [0, 1]{floors}",
        names.join(", "),
        recalls.len()
    ))
}

/// An engine's recall@k at the largest ef_search of its sweep.
fn top_recall(engine: &Value) -> Option<f64> {
    engine
        .get("sweep")?
        .as_array()?
        .iter()
        .max_by_key(|point| point.get("ef_search").and_then(Value::as_u64).unwrap_or(0))?
        .get("recall_at_k")?
        .as_f64()
}

/// Every value under a key that starts with "recall", with its path.
fn collect_recalls<'a>(value: &'a Value, place: &str, found: &mut Vec<(String, &'a Value)>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                let inner_place = format!("{place}.{key}");
                if key.starts_with("recall") {
                    found.push((inner_place, inner));
                } else {
                    collect_recalls(inner, &inner_place, found);
                }
            }
        }
        Value::Array(items) => {
            for (index, inner) in items.iter().enumerate() {
                collect_recalls(inner, &format!("{place}[{index}]"), found);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn recalls_must_be_numbers_in_the_unit_interval() {
        let good = json!({"engines": [{"engine": "hannoy", "sweep": [{"recall_at_k": 0.9,
            "recall_at_100": 1.0}], "filtered": [{"recall_at_k": 0.0}]}],
            "exact": {"recall_at_k": 1.0}});
        assert!(check_json(&good, &[]).is_ok());
        for bad in [
            json!({"engines": [{"engine": "hannoy", "sweep": [{"recall_at_k": 1.5}]}]}),
            json!({"engines": [{"engine": "hannoy", "sweep": [{"recall_at_k": null}]}]}),
            json!({"engines": [{"engine": "hannoy", "sweep": [{"recall_at_k": "0.9"}]}]}),
            json!({"engines": [{"engine": "hannoy", "sweep": [{"qps": 3}]}]}),
            json!({"engines": [{"engine": "hannoy", "sweep": []}]}),
            json!({"engines": []}),
        ] {
            assert!(check_json(&bad, &[]).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_cold_point_must_have_read_its_index_from_disk() {
        let with_pages = |pages: serde_json::Value| {
            json!({"engines": [{"engine": "hannoy", "sweep": [{"recall_at_k": 0.9}],
                "cold": [{"ef_search": 40, "recall_at_k": 0.9, "index_pages_mean": pages}]}]})
        };
        assert!(check_json(&with_pages(json!(12.5)), &[]).is_ok());
        for pages in [json!(0.0), json!(null)] {
            let problem = check_json(&with_pages(pages), &[]).unwrap_err();
            assert!(problem.contains("no page of the index"), "{problem}");
        }
        // pgvector's pages may all be in shared buffers: nothing to read from disk.
        let pgvector = json!({"engines": [{"engine": "pgvector", "sweep": [{"recall_at_k": 0.9}],
            "cold": [{"ef_search": 40, "recall_at_k": 0.9, "index_pages_mean": 0.0}]}]});
        assert!(check_json(&pgvector, &[]).is_ok());
    }

    #[test]
    fn floors_apply_to_the_largest_ef_search_of_engines_that_were_measured() {
        let run = json!({"engines": [{"engine": "hannoy", "sweep": [
            {"ef_search": 10, "recall_at_k": 0.5}, {"ef_search": 40, "recall_at_k": 0.97}]}]});
        let floor = |engine: &str, recall: f64| vec![(engine.to_string(), recall)];
        assert!(check_json(&run, &floor("hannoy", 0.95)).is_ok());
        assert!(check_json(&run, &floor("hannoy", 0.98)).is_err());
        // An engine that could not be measured (pgvector absent) has nothing to meet.
        let summary = check_json(&run, &floor("pgvector", 0.9)).unwrap();
        assert!(summary.contains("pgvector not measured"), "{summary}");
    }
}
