//! `labgate migrate oauth2-proxy`: turns an oauth2-proxy configuration (its TOML config
//! file, its flags, or both, as a Kubernetes Deployment or the oauth2-proxy Helm chart's
//! values give them) into an equivalent
//! labgate TOML with a comment for every setting (mapped, changed, or not mapped and why),
//! then validates it exactly as `labgate check` does.
//!
//! `source` reads oauth2-proxy's inputs (`yaml` its YAML and Kubernetes forms, `helm` the
//! chart's values), `options` is its vocabulary, `old_names` what it did with names it no
//! longer reads, `map` the pure mapping, `doc` the commented TOML. Owns no policy of its own: what the output means is
//! decided by `config` when it is loaded, like any labgate file. The oauth2-proxy cookie
//! secret is never carried over (a fresh one is generated), and secrets never appear in a
//! comment.

mod doc;
mod helm;
mod map;
mod old_names;
mod options;
mod source;
#[cfg(test)]
mod tests;
mod yaml;

use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;

pub use source::SourceError;

use crate::config::{Config, ConfigError, Overrides};

/// Exit code when the input cannot be migrated or the result does not validate (as
/// `labgate check`'s configuration errors).
const EXIT_CONFIG: u8 = 2;

/// The outcome of a migration.
#[derive(Debug)]
pub struct Migration {
    /// The labgate TOML, with comments.
    pub toml: String,
    /// Why the configuration cannot be migrated as it is (empty: it can).
    pub problems: Vec<String>,
    /// What the output does differently enough to say on stderr too (each also in a
    /// comment): a path oauth2-proxy routed to another upstream, Redirect URIs to add.
    pub warnings: Vec<String>,
}

/// One input: its name (for messages and the header) and its text.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// File name as given.
    pub name: &'a str,
    /// Contents.
    pub text: &'a str,
}

/// Migrates oauth2-proxy's config file and/or flags; `fresh_cookie_secret` becomes the new
/// `session.cookie_secret` (see [`crate::generate_cookie_secret`]).
pub fn oauth2_proxy(
    config: Option<Input<'_>>,
    args: Option<Input<'_>>,
    fresh_cookie_secret: &str,
) -> Result<Migration, SourceError> {
    let instances = match args {
        Some(a) => source::instances_from_args(a.text, a.name)?,
        None => Vec::new(),
    };
    let chart = instances.iter().find_map(|i| i.chart.clone());
    if let (Some(c), Some(a), Some(helm::ChartConfig::Written { from, .. })) =
        (config, args, &chart)
    {
        return Err(SourceError::Yaml {
            file: a.name.to_owned(),
            detail: format!("the chart mounts oauth2-proxy's config file itself, {from}, so {} is not the one oauth2-proxy read: leave --config out, or set config.existingConfig to the ConfigMap that file is in", c.name),
        });
    }
    let names: Vec<String> = config
        .iter()
        .map(|c| format!("config file {}", c.name))
        .chain(args.iter().map(|a| {
            if chart.is_some() {
                format!("Helm values {} of the oauth2-proxy chart", a.name)
            } else {
                format!("flags in {}", a.name)
            }
        }))
        .collect();
    let mut header = vec![format!(
        "labgate configuration migrated from oauth2-proxy ({}) by `labgate migrate oauth2-proxy`.",
        names.join(", ")
    )];
    let mut remarks = Vec::new();
    let mut unmapped = Vec::new();
    let mut warnings = Vec::new();
    let mut mapped = if instances.len() > 1 {
        if let (Some(c), Some(a)) = (config, args) {
            return Err(SourceError::Apps {
                file: a.name.to_owned(),
                detail: format!("it holds several oauth2-proxy containers, and one config file ({}) cannot be told apart between them: give their config files' settings as flags, or migrate them one at a time", c.name),
            });
        }
        let labels: Vec<String> = instances
            .iter()
            .map(|i| i.label.clone().unwrap_or_default())
            .collect();
        header.push(format!(
            "It holds {} oauth2-proxy instances ({}), one per app: oauth2-proxy routes by path only, so each app had its own. They are merged into one labgate that serves each app by its host ([[upstream]] hosts = its redirect_url's host). Settings the instances share appear once; each app's own carry its name.",
            instances.len(),
            labels.join(", ")
        ));
        let apps: Vec<(String, source::Options)> = instances
            .into_iter()
            .map(|i| {
                let mut o = source::Options::default();
                o.add(i.settings);
                remarks.extend(i.remarks);
                let (notes, warned) = old_names::notes(&o, i.version);
                remarks.extend(notes.into_iter().map(source::Remark));
                warnings.extend(warned.into_iter().chain(i.warnings));
                unmapped.extend(i.unmapped);
                (i.label.unwrap_or_default(), o)
            })
            .collect();
        map::map_apps(apps, fresh_cookie_secret)
    } else {
        let mut o = source::Options::default();
        if let Some(c) = config {
            o.add(source::from_toml(c.text, c.name)?);
        }
        let mut version = None;
        for i in instances {
            o.add(i.settings);
            remarks.extend(i.remarks);
            warnings.extend(i.warnings);
            unmapped.extend(i.unmapped);
            version = version.or(i.version);
        }
        let (notes, warned) = old_names::notes(&o, version);
        remarks.extend(notes.into_iter().map(source::Remark));
        warnings.extend(warned);
        map::map(&o, fresh_cookie_secret)
    };
    for u in unmapped {
        mapped.doc.unmapped(u);
    }
    mapped.warnings.extend(warnings);
    header.push("Every oauth2-proxy setting is accounted for: the comment above a key says where it came from and what changed; comments at the top of a table cover settings labgate needs no key for; the list at the end holds what could not be mapped, with the reason. Review them all before use.".into());
    header.extend(remarks.iter().map(|r| format!("Input: {}", r.0)));
    mapped.doc.header = header;
    Ok(Migration {
        toml: mapped.doc.render(),
        problems: mapped.problems,
        warnings: mapped.warnings,
    })
}

/// Validates a labgate TOML as `labgate check` does: loaded with the process environment
/// layered on top (`LABGATE__*`), then refused if it holds a published secret.
pub fn validate(
    toml_text: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let config = crate::config::load_text(toml_text, env, &Overrides::default())?;
    let problems = crate::config::published_secret_problems(&config);
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError { problems })
    }
}

/// `labgate migrate oauth2-proxy [--config FILE] [--args FILE]` ("-" = standard input):
/// the TOML on stdout, the verdict on stderr, exit 0 or 2 like `labgate check`; `notes`
/// are `labgate check`'s notes about a valid configuration.
pub fn command(
    config: Option<&Path>,
    args: Option<&Path>,
    notes: impl Fn(&Config) -> Vec<String>,
) -> ExitCode {
    if config.is_none() && args.is_none() {
        eprintln!("labgate migrate oauth2-proxy: give oauth2-proxy's config file (--config FILE), its flags (--args FILE: a Deployment, its args list, the oauth2-proxy Helm chart's values, or --flag=value lines), or both");
        return ExitCode::from(EXIT_CONFIG);
    }
    let read = |p: Option<&Path>| -> Result<Option<(String, String)>, String> {
        let Some(p) = p else { return Ok(None) };
        let stdin = p.as_os_str() == "-";
        let name = if stdin {
            "standard input".to_owned()
        } else {
            p.display().to_string()
        };
        let mut text = String::new();
        let got = if stdin {
            std::io::stdin().read_to_string(&mut text).map(|_| ())
        } else {
            std::fs::read_to_string(p).map(|t| text = t)
        };
        got.map(|()| Some((name.clone(), text)))
            .map_err(|e| format!("cannot read {name}: {e}"))
    };
    let (config, args) = match (read(config), read(args)) {
        (Ok(c), Ok(a)) => (c, a),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("labgate migrate oauth2-proxy: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    fn input(v: &Option<(String, String)>) -> Option<Input<'_>> {
        v.as_ref().map(|(name, text)| Input {
            name: name.as_str(),
            text: text.as_str(),
        })
    }
    let secret = crate::generate_cookie_secret();
    let migration = match oauth2_proxy(input(&config), input(&args), &secret) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("labgate migrate oauth2-proxy: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let mut out = std::io::stdout().lock();
    if out
        .write_all(migration.toml.as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    for w in &migration.warnings {
        eprintln!("warning: {w}");
    }
    let mut failed = false;
    if !migration.problems.is_empty() {
        failed = true;
        eprintln!("labgate migrate oauth2-proxy: this oauth2-proxy configuration cannot be migrated as it is:");
        for p in &migration.problems {
            eprintln!("  {p}");
        }
    }
    match validate(&migration.toml, std::env::vars()) {
        Ok(config) => {
            eprintln!(
                "labgate migrate oauth2-proxy: the configuration above passes `labgate check`"
            );
            eprintln!(
                "Redirect URI (paste into the GitLab application): {}",
                crate::app::redirect_uri(&config)
            );
            for n in notes(&config) {
                eprintln!("note: {n}");
            }
        }
        Err(e) => {
            failed = true;
            eprintln!(
                "labgate migrate oauth2-proxy: the configuration above needs fixing before labgate runs it (configuration error{}):",
                if e.problems.len() > 1 { "s" } else { "" }
            );
            for p in &e.problems {
                eprintln!("  {}: {}", p.key, p.message);
            }
        }
    }
    if failed {
        ExitCode::from(EXIT_CONFIG)
    } else {
        ExitCode::SUCCESS
    }
}
