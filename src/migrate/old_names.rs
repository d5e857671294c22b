//! What oauth2-proxy did with a setting written under a name it no longer reads, or never
//! read ([`OldName`]): `OAUTH2_PROXY_EMAIL_DOMAIN` (the variable is
//! `OAUTH2_PROXY_EMAIL_DOMAINS`), `OAUTH2_PROXY_GITLAB_GROUP` (renamed in v6.0.0), a
//! `gitlab_group` config key. Each becomes a note at the top of the output saying which
//! versions read it and what the migration did, and a warning when labgate now applies
//! what oauth2-proxy ignored.
//!
//! Owns the wording only: which names are old is `options`' business, their precedence
//! `source`'s.

use super::options::{self, OldName, Version, CHECKED_UP_TO};
use super::source::{Options, Origin, Setting};

/// Notes (for the header) and warnings (for stderr) about old names in `o`, read by an
/// oauth2-proxy of `version` (unknown: the current releases).
pub(crate) fn notes(o: &Options, version: Option<Version>) -> (Vec<String>, Vec<String>) {
    let mut notes = Vec::new();
    let mut warnings = Vec::new();
    let settings = o.settings.iter().map(|x| (x, None));
    let overridden = o.overridden.iter().map(|(x, by)| (x, Some(by.as_str())));
    for (x, by) in settings.chain(overridden) {
        let Some((old, env)) = old_name(x) else {
            continue;
        };
        let name = match &x.app {
            Some(app) => format!("{app}: {}", x.shown),
            None => x.shown.clone(),
        };
        let value = if x.is_secret() {
            String::new()
        } else {
            format!(" = {}", x.shown_value())
        };
        let cfg = old.cfg;
        if !env {
            // A renamed config-file key: the version ran it, so nothing changes.
            if let Some((last, renamed_in)) = old.renamed {
                notes.push(format!(
                    "{name}{value}: a config key oauth2-proxy {last} and earlier read; {renamed_in} renamed it {cfg}, and later versions refuse the old key (viper's UnmarshalExact) and do not start: read as {cfg}"
                ));
            }
            continue;
        }
        let now = format!("OAUTH2_PROXY_{}", cfg.to_ascii_uppercase());
        let read = old.read_by(version);
        let what = match (old.renamed, version) {
            (None, Some(v)) => format!("oauth2-proxy {v} (the version its image names) does not read this variable, and no version does (checked up to {CHECKED_UP_TO}): a variable is named after the config key, {now}"),
            (None, None) => format!("no oauth2-proxy version reads this variable (checked up to {CHECKED_UP_TO}): a variable is named after the config key, {now}"),
            (Some((_, renamed_in)), Some(v)) if read => format!("oauth2-proxy {v} (the version its image names) reads this variable; {renamed_in} renamed it {now}, and later versions ignore the old name"),
            (Some((last, renamed_in)), Some(v)) => format!("oauth2-proxy {v} (the version its image names) ignores this variable: {renamed_in} renamed it {now} ({last} and earlier read it)"),
            (Some((last, renamed_in)), None) => format!("oauth2-proxy {last} and earlier read this variable; {renamed_in} renamed it {now}, and later versions ignore it silently"),
        };
        let outcome = match (by, old.renamed, version) {
            (Some(by), _, _) => format!("not used: {by} sets {cfg}, and that is what oauth2-proxy read"),
            (None, _, _) if read => format!("migrated as {cfg}"),
            (None, Some((_, renamed_in)), None) => format!("migrated as meant, as {cfg}: if your oauth2-proxy was {renamed_in} or later, it ran without this setting and labgate now applies it"),
            (None, _, _) => format!("migrated as meant, as {cfg}: oauth2-proxy ran without this setting, and labgate now applies it"),
        };
        notes.push(format!("{name}{value}: {what}; {outcome}"));
        if by.is_none() && !read {
            warnings.push(format!(
                "{name}: oauth2-proxy {} this variable (the name is {now}); labgate applies it as {cfg} (see the note at the top of the output)",
                match (old.renamed, version) {
                    (Some((_, renamed_in)), None) => format!("{renamed_in} and later ignore"),
                    _ => "ignored".to_owned(),
                }
            ));
        }
    }
    (notes, warnings)
}

/// The old name a setting was written under, and whether it is an environment name.
fn old_name(x: &Setting) -> Option<(OldName, bool)> {
    match x.origin {
        Origin::Env | Origin::OldEnv => {
            let key = x.shown.strip_prefix("OAUTH2_PROXY_")?.to_ascii_lowercase();
            if options::by_cfg(&key).is_some() {
                return None;
            }
            options::old_name(&key).map(|o| (o, true))
        }
        Origin::File if options::by_cfg(&x.shown).is_none() => options::old_name(&x.shown)
            .filter(|o| o.in_file)
            .map(|o| (o, false)),
        Origin::File | Origin::Flag => None,
    }
}
