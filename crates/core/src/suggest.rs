//! "Did you mean" suggestions for misspelled names.

/// The closest candidate to `word`, if one is close enough to be a plausible typo.
pub fn closest<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut best: Option<(f64, &'a str)> = None;
    for candidate in candidates {
        let score = strsim::jaro_winkler(word, candidate);
        if score >= 0.8 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// `did you mean `x`?` for the closest candidate, or a list of what exists.
pub fn did_you_mean<'a, I>(word: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str> + Clone,
{
    if let Some(c) = closest(word, candidates.clone()) {
        return Some(format!("did you mean `{c}`?"));
    }
    let all: Vec<&str> = candidates.into_iter().collect();
    if all.is_empty() {
        None
    } else {
        Some(format!("known names: {}", all.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_a_close_name() {
        assert_eq!(closest("apps", ["app", "db", "queue"]), Some("app"));
        assert_eq!(closest("masterbd", ["db", "masterdb"]), Some("masterdb"));
    }

    #[test]
    fn lists_names_when_nothing_is_close() {
        assert_eq!(
            did_you_mean("zzz", ["app", "db"]),
            Some("known names: app, db".to_string())
        );
    }
}
