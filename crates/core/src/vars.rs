//! Variables: deep merge in precedence order, and `--var key.path=value` overrides.

use crate::model::Vars;
use serde_json::Value;

/// Merges `over` into `base`: maps merge key by key, recursively; anything else replaces.
pub fn deep_merge(base: &mut Vars, over: &Vars) {
    for (key, value) in over {
        match (base.get_mut(key), value) {
            (Some(Value::Object(b)), Value::Object(o)) => deep_merge(b, o),
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

/// The most parts a `--var` key may have (`a.b.c` has 3): deeper maps are not a variable
/// anyone writes, and each part is a level of nesting every merge walks.
pub const MAX_KEY_PARTS: usize = 32;

/// A `--var key.path=value` from the command line. The value is read as YAML, so `3` is a
/// number, `true` a boolean, `[a, b]` a list; anything that does not parse is a string.
#[derive(Debug, Clone, PartialEq)]
pub struct VarOverride {
    pub path: Vec<String>,
    pub value: Value,
}

impl VarOverride {
    pub fn parse(text: &str) -> Result<VarOverride, String> {
        // Quoted in messages at most 80 characters long: a --var can be 100 KB.
        let shown = match text.char_indices().nth(80) {
            Some((i, _)) => format!("{}...", &text[..i]),
            None => text.to_string(),
        };
        let (path, raw) = text
            .split_once('=')
            .ok_or_else(|| format!("--var `{shown}` has no `=`: write --var key.path=value"))?;
        let path: Vec<String> = path.trim().split('.').map(str::to_string).collect();
        if path.len() > MAX_KEY_PARTS {
            return Err(format!(
                "--var: the key has {} parts, more than the {MAX_KEY_PARTS} allowed: write a shorter key.path",
                path.len()
            ));
        }
        if path.iter().any(String::is_empty) {
            return Err(format!("--var `{shown}`: the key has an empty part"));
        }
        let value = serde_saphyr::from_str_with_options::<Value>(raw, crate::site::yaml_options())
            .ok()
            .filter(|v| !v.is_null() || raw.trim() == "null")
            .unwrap_or_else(|| Value::String(raw.to_string()));
        Ok(VarOverride { path, value })
    }

    /// As a nested map, ready for [`deep_merge`].
    pub fn as_vars(&self) -> Vars {
        let mut value = self.value.clone();
        for key in self.path.iter().rev() {
            let mut map = Vars::new();
            map.insert(key.clone(), value);
            value = Value::Object(map);
        }
        match value {
            Value::Object(map) => map,
            _ => Vars::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(v: Value) -> Vars {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn maps_merge_deeply_scalars_and_lists_replace() {
        let mut base = vars(json!({"nginx": {"workers": 2, "gzip": true}, "pkgs": [1, 2], "x": 1}));
        deep_merge(
            &mut base,
            &vars(json!({"nginx": {"workers": 4}, "pkgs": [3], "y": 2})),
        );
        assert_eq!(
            Value::Object(base),
            json!({"nginx": {"workers": 4, "gzip": true}, "pkgs": [3], "x": 1, "y": 2})
        );
    }

    #[test]
    fn a_map_can_replace_a_scalar_and_back() {
        let mut base = vars(json!({"a": 1, "b": {"c": 1}}));
        deep_merge(&mut base, &vars(json!({"a": {"z": 1}, "b": 5})));
        assert_eq!(Value::Object(base), json!({"a": {"z": 1}, "b": 5}));
    }

    #[test]
    fn overrides_parse_yaml_values() {
        let o = VarOverride::parse("app.gunicorn.workers=8").unwrap();
        assert_eq!(o.path, ["app", "gunicorn", "workers"]);
        assert_eq!(o.value, json!(8));
        assert_eq!(
            Value::Object(o.as_vars()),
            json!({"app": {"gunicorn": {"workers": 8}}})
        );
        assert_eq!(
            VarOverride::parse("a=hello world").unwrap().value,
            json!("hello world")
        );
        assert_eq!(VarOverride::parse("a=true").unwrap().value, json!(true));
        assert_eq!(VarOverride::parse("a=").unwrap().value, json!(""));
        assert!(VarOverride::parse("novalue").is_err());
        assert!(VarOverride::parse("a..b=1").is_err());
    }

    /// ~6,500 parts overflowed the stack when merged and rendered.
    #[test]
    fn a_key_too_deep_is_an_error() {
        let deep = format!("{}=1", vec!["a"; 6500].join("."));
        let e = VarOverride::parse(&deep).unwrap_err();
        assert!(e.contains("6500 parts, more than the 32 allowed"), "{e}");
        assert!(VarOverride::parse(&format!("{}=1", vec!["a"; 32].join("."))).is_ok());
    }
}
