//! Reading an oauth2-proxy configuration: its TOML config file (underscored keys such as
//! `email_domains`), its flags (`--email-domain=x` or `--email-domain x`, as lines of a
//! file, a YAML list, or a Kubernetes workload's container `args` and `OAUTH2_PROXY_*`
//! `env`), merged with oauth2-proxy's precedence: flags, then environment, then file.
//!
//! Owns parsing only: every value is kept as written (typed by [`Kind`]), and anything that
//! is not an oauth2-proxy option is kept too, so that nothing is dropped silently.

use super::helm::ChartConfig;
use super::options::{self, Kind, Spec, Version};

/// Where a value came from, which decides precedence (higher wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Origin {
    /// An environment variable under a name oauth2-proxy does not read (see
    /// [`options::OldName`]): read as meant, below everything oauth2-proxy did read.
    OldEnv,
    /// The TOML config file.
    File,
    /// An `OAUTH2_PROXY_*` environment variable of the workload.
    Env,
    /// A command-line flag.
    Flag,
}

/// A value as oauth2-proxy would read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    /// A string (also durations and integers, as written).
    Text(String),
    /// A boolean.
    Bool(bool),
    /// A list.
    List(Vec<String>),
    /// Filled in at run time from somewhere this file only names, e.g. `Secret oauth2-proxy
    /// key client-secret` (a Kubernetes `valueFrom`).
    External(String),
}

/// One setting of the oauth2-proxy configuration.
#[derive(Debug, Clone)]
pub(crate) struct Setting {
    /// The config-file key for a known option (`email_domains`), else the name as written.
    pub(crate) key: String,
    /// The name as the user wrote it (`--email-domain`, `OAUTH2_PROXY_EMAIL_DOMAINS`,
    /// `email_domains`), for comments.
    pub(crate) shown: String,
    /// The option, when oauth2-proxy has one by that name.
    pub(crate) spec: Option<&'static Spec>,
    /// The value.
    pub(crate) value: Value,
    /// Where it came from.
    pub(crate) origin: Origin,
    /// The oauth2-proxy instance it belongs to, when several are merged (its workload's
    /// name), for comments.
    pub(crate) app: Option<String>,
}

impl Setting {
    /// Whether the value must never be shown.
    pub(crate) fn is_secret(&self) -> bool {
        self.spec
            .map_or_else(|| options::sounds_secret(&self.key), |s| s.secret)
    }

    /// The value for a comment: secrets and unknown values as `<secret>` / `<not shown>`.
    pub(crate) fn shown_value(&self) -> String {
        if let Value::External(from) = &self.value {
            return format!("<from {from}>");
        }
        if self.is_secret() {
            return "<secret>".into();
        }
        if self.spec.is_none() {
            return "<not shown>".into();
        }
        match &self.value {
            Value::Text(s) => toml::Value::String(s.clone()).to_string(),
            Value::Bool(b) => b.to_string(),
            Value::List(l) => {
                toml::Value::Array(l.iter().map(|s| toml::Value::String(s.clone())).collect())
                    .to_string()
            }
            Value::External(_) => String::new(),
        }
    }
}

/// Something in the input that is neither an option nor an error: a referenced config
/// file, an environment variable that is not oauth2-proxy's, a stray word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Remark(pub(crate) String);

/// Why an input could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The config file is not TOML.
    #[error("{file}: not valid TOML: {detail}")]
    Toml {
        /// File name.
        file: String,
        /// The parser's message (line and column).
        detail: String,
    },
    /// The args file is YAML that holds no oauth2-proxy container or args list.
    #[error("{file}: {detail}")]
    Yaml {
        /// File name.
        file: String,
        /// What was expected.
        detail: String,
    },
    /// The inputs hold several oauth2-proxy instances that cannot be merged so.
    #[error("{file}: {detail}")]
    Apps {
        /// File name.
        file: String,
        /// Why, and what to give instead.
        detail: String,
    },
}

/// The merged configuration: one setting per key, highest precedence first seen.
#[derive(Debug, Default)]
pub(crate) struct Options {
    /// Settings in effect, in input order.
    pub(crate) settings: Vec<Setting>,
    /// Settings a higher-precedence source replaced (oauth2-proxy ignores them too).
    pub(crate) overridden: Vec<(Setting, String)>,
}

impl Options {
    /// Adds settings from one source, replacing lower-precedence ones with the same key.
    pub(crate) fn add(&mut self, settings: Vec<Setting>) {
        for s in settings {
            match self.settings.iter().position(|have| have.key == s.key) {
                Some(i) if self.settings.get(i).is_some_and(|h| h.origin > s.origin) => {
                    let by = self
                        .settings
                        .get(i)
                        .map(|h| h.shown.clone())
                        .unwrap_or_default();
                    self.overridden.push((s, by));
                }
                Some(i) => {
                    if let Some(slot) = self.settings.get_mut(i) {
                        let old = std::mem::replace(slot, s);
                        let by = slot.shown.clone();
                        self.overridden.push((old, by));
                    }
                }
                None => self.settings.push(s),
            }
        }
    }

    /// The setting for a config-file key.
    pub(crate) fn get(&self, key: &str) -> Option<&Setting> {
        self.settings.iter().find(|s| s.key == key)
    }
}

/// Reads oauth2-proxy's TOML config file.
pub(crate) fn from_toml(text: &str, file: &str) -> Result<Vec<Setting>, SourceError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| SourceError::Toml {
            file: file.to_owned(),
            detail: crate::config::toml_error(text, &e),
        })?;
    let mut out = Vec::new();
    for (key, v) in table {
        let spec = options::by_file_key(&key);
        let value = match (spec.map(|s| s.kind), v) {
            (_, toml::Value::Array(items)) => Value::List(items.iter().map(toml_scalar).collect()),
            (Some(Kind::Bool), toml::Value::Boolean(b)) => Value::Bool(b),
            (Some(Kind::Bool), toml::Value::String(s)) => {
                parse_bool(&s).map_or(Value::Text(s), Value::Bool)
            }
            (Some(Kind::List), toml::Value::String(s)) => Value::List(split_list(&s)),
            (_, other) => Value::Text(toml_scalar(&other)),
        };
        out.push(Setting {
            key: spec.map_or_else(|| key.clone(), |s| s.cfg.to_owned()),
            shown: key,
            spec,
            value,
            origin: Origin::File,
            app: None,
        });
    }
    Ok(out)
}

fn toml_scalar(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Go's `strconv.ParseBool`, which pflag and oauth2-proxy's loader use.
fn parse_bool(s: &str) -> Option<bool> {
    match s.trim() {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// A list option given as one string, read as pflag reads it: one line of CSV (Go's
/// encoding/csv), so `"acme/sre"` (a Helm chart's `| quote`) is `acme/sre` and a quoted
/// field may hold a comma.
fn split_list(s: &str) -> Vec<String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(s.as_bytes());
    let mut record = csv::StringRecord::new();
    let fields: Vec<String> = match reader.read_record(&mut record) {
        Ok(true) => record.iter().map(str::to_owned).collect(),
        _ => s.split(',').map(str::to_owned).collect(),
    };
    fields
        .iter()
        .map(|f| f.trim())
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect()
}

/// An environment variable of the workload: a literal value or a reference.
#[derive(Debug, Clone)]
pub(crate) struct EnvVar {
    /// Its name.
    pub(crate) name: String,
    /// Its value, or where it comes from.
    pub(crate) value: Value,
}

/// One oauth2-proxy process of the flags file: its settings (flags and environment) and
/// remarks about them.
#[derive(Debug)]
pub(crate) struct Instance {
    /// Its name when the file holds several (the workload's `metadata.name`, with the
    /// container's name when one workload runs several).
    pub(crate) label: Option<String>,
    /// Flags and `OAUTH2_PROXY_*` environment, as [`Options::add`] takes them.
    pub(crate) settings: Vec<Setting>,
    /// Remarks about its input.
    pub(crate) remarks: Vec<Remark>,
    /// The oauth2-proxy version its image names, when it does.
    pub(crate) version: Option<Version>,
    /// A Helm values file: the config file the chart mounts (`None`: not a values file).
    pub(crate) chart: Option<ChartConfig>,
    /// Values of its input that are not oauth2-proxy settings and are not mapped, with why.
    pub(crate) unmapped: Vec<String>,
    /// Said on stderr too.
    pub(crate) warnings: Vec<String>,
}

/// Reads the flags file of one oauth2-proxy (see [`instances_from_args`]).
#[cfg(test)]
pub(crate) fn from_args(
    text: &str,
    file: &str,
) -> Result<(Vec<Setting>, Vec<Remark>), SourceError> {
    let mut all = instances_from_args(text, file)?;
    match (all.pop(), all.is_empty()) {
        (Some(one), true) => Ok((one.settings, one.remarks)),
        _ => Err(SourceError::Yaml {
            file: file.to_owned(),
            detail: "several oauth2-proxy containers".into(),
        }),
    }
}

/// Reads the flags file: lines of `--flag=value` / `--flag value` (a shell command line
/// copied from the docs works too), or YAML: a list of args, a container with `args`, or
/// Kubernetes workloads (each oauth2-proxy container's `args` and `env`). Several
/// oauth2-proxy containers (one per app, as oauth2-proxy routes by path only) are several
/// instances, labelled by their workload.
pub(crate) fn instances_from_args(text: &str, file: &str) -> Result<Vec<Instance>, SourceError> {
    let processes = if looks_like_yaml(text) {
        super::yaml::processes(text, file)?
    } else {
        vec![super::yaml::Process {
            args: shell_words(text),
            ..super::yaml::Process::default()
        }]
    };
    let mut out = Vec::new();
    for p in processes {
        let label = p.label;
        let (mut settings, mut remarks) = instance(&p.args, &p.env, p.version);
        let (mut unmapped, mut warnings, mut chart) = (Vec::new(), Vec::new(), None);
        if let Some(c) = p.chart {
            if let ChartConfig::Written { from, text, shown } = &c.config {
                for mut x in from_toml(text, &format!("{file}: {from}"))? {
                    if let Some((_, name)) = shown.iter().find(|(k, _)| *k == x.key) {
                        x.shown.clone_from(name);
                    }
                    settings.push(x);
                }
            }
            remarks.extend(c.remarks);
            unmapped = c.unmapped;
            warnings = c.warnings;
            chart = Some(c.config);
        }
        let settings = settings
            .into_iter()
            .map(|s| Setting {
                app: label.clone(),
                ..s
            })
            .collect();
        let remarks = match &label {
            Some(l) => remarks
                .into_iter()
                .map(|r| Remark(format!("{l}: {}", r.0)))
                .collect(),
            None => remarks,
        };
        if let Some(l) = &label {
            for line in unmapped.iter_mut().chain(warnings.iter_mut()) {
                *line = format!("{l}: {line}");
            }
        }
        out.push(Instance {
            label,
            settings,
            remarks,
            version: p.version,
            chart,
            unmapped,
            warnings,
        });
    }
    Ok(out)
}

/// The settings of one process: its env (unless its args read a variable as `$(NAME)`)
/// and its flags; `version`, its image's, decides which variable names it read.
fn instance(
    args: &[String],
    env: &[EnvVar],
    version: Option<Version>,
) -> (Vec<Setting>, Vec<Remark>) {
    let mut remarks = Vec::new();
    // Variables the args use as $(NAME) are read through them.
    let referenced: Vec<&str> = args
        .iter()
        .filter_map(|a| a.split_once("=$(").and_then(|(_, r)| r.strip_suffix(')')))
        .chain(
            args.iter()
                .filter_map(|a| a.strip_prefix("$(").and_then(|r| r.strip_suffix(')'))),
        )
        .collect();
    let unreferenced: Vec<EnvVar> = env
        .iter()
        .filter(|e| !referenced.contains(&e.name.as_str()))
        .cloned()
        .collect();
    let mut settings = env_settings(&unreferenced, version, &mut remarks);
    settings.extend(flag_settings(args, env, &mut remarks));
    (settings, remarks)
}

/// YAML starts with a list item, a `key:` or a document marker; flag lines start with `-`
/// followed by a letter or another `-`.
fn looks_like_yaml(text: &str) -> bool {
    let Some(first) = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
    else {
        return false;
    };
    if first == "-"
        || first.starts_with("- ")
        || first.starts_with("-\t")
        || first.starts_with("---")
    {
        return true;
    }
    let word = first.split(':').next().unwrap_or("");
    first.contains(':')
        && !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && !word.starts_with('-')
}

/// Splits shell-like text into words as a POSIX shell reads them (the `shell-words`
/// crate: quotes, backslashes, `#` comments), a line at a time after a trailing `\` joins
/// lines; a word starting with `//` starts a comment to the end of its line too (the
/// provider docs annotate their examples so). A line a shell could not read (an open
/// quote) is split at whitespace.
fn shell_words(text: &str) -> Vec<String> {
    text.replace("\\\n", " ")
        .lines()
        .flat_map(|line| {
            // A `//` word ends the line before the shell reads it (its text is prose).
            let code = line
                .match_indices("//")
                .find(|(i, _)| {
                    line.get(..*i)
                        .is_some_and(|b| b.is_empty() || b.ends_with(char::is_whitespace))
                })
                .and_then(|(i, _)| line.get(..i))
                .unwrap_or(line);
            shell_words::split(code)
                .unwrap_or_else(|_| code.split_whitespace().map(str::to_owned).collect())
        })
        .collect()
}

/// `OAUTH2_PROXY_<CONFIG KEY>` variables become settings; others are remarked upon. A
/// name oauth2-proxy does not read (`OAUTH2_PROXY_EMAIL_DOMAIN`, see [`options::OldName`])
/// is read as the option it was meant for, below every name that `version` (unknown: the
/// current releases) does read.
fn env_settings(
    env: &[EnvVar],
    version: Option<Version>,
    remarks: &mut Vec<Remark>,
) -> Vec<Setting> {
    let mut out = Vec::new();
    for e in env {
        let Some(rest) = e.name.strip_prefix("OAUTH2_PROXY_") else {
            remarks.push(Remark(format!(
                "environment variable {} is not an oauth2-proxy setting: not read",
                e.name
            )));
            continue;
        };
        let key = rest.to_ascii_lowercase();
        let (spec, origin) = match (options::by_cfg(&key), options::old_name(&key)) {
            (Some(spec), _) => (Some(spec), Origin::Env),
            (None, Some(old)) if old.read_by(version) => (options::by_cfg(old.cfg), Origin::Env),
            (None, Some(old)) => (options::by_cfg(old.cfg), Origin::OldEnv),
            (None, None) => (None, Origin::Env),
        };
        out.push(Setting {
            key: spec.map_or_else(|| key.clone(), |s| s.cfg.to_owned()),
            shown: e.name.clone(),
            spec,
            value: typed(spec, e.value.clone()),
            origin,
            app: None,
        });
    }
    out
}

/// A string value read with the option's kind.
fn typed(spec: Option<&Spec>, v: Value) -> Value {
    match (spec.map(|s| s.kind), v) {
        (Some(Kind::Bool), Value::Text(s)) => parse_bool(&s).map_or(Value::Text(s), Value::Bool),
        (Some(Kind::List), Value::Text(s)) => Value::List(split_list(&s)),
        (_, v) => v,
    }
}

/// Parses flags as pflag does: `--name=value`, `--name value` for non-boolean flags, a bare
/// boolean `--name`; a single dash works too (older Go `flag` style). `$(VAR)` is expanded
/// from the container's env as the kubelet does.
fn flag_settings(args: &[String], env: &[EnvVar], remarks: &mut Vec<Remark>) -> Vec<Setting> {
    let mut out: Vec<Setting> = Vec::new();
    let mut i = 0;
    let mut skipped_program = false;
    while let Some(arg) = args.get(i) {
        i += 1;
        let Some(body) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            if !skipped_program
                && out.is_empty()
                && (arg.contains("oauth2-proxy") || arg.contains("oauth2_proxy"))
            {
                skipped_program = true;
            } else {
                remarks.push(Remark(format!(
                    "{arg:?} is not a flag: ignored, as oauth2-proxy ignores arguments"
                )));
            }
            continue;
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (body, None),
        };
        if options::COMMAND_FLAGS.contains(&name) {
            let value = inline.or_else(|| {
                let v = args.get(i).filter(|v| !v.starts_with('-')).cloned();
                if v.is_some() {
                    i += 1;
                }
                v
            });
            remarks.push(Remark(match (name, value) {
                ("config", Some(f)) => format!("--config={f}: this oauth2-proxy also reads that file; pass it too: labgate migrate oauth2-proxy --config FILE --args ..."),
                ("alpha-config", Some(f)) => format!("--alpha-config={f}: oauth2-proxy's alpha (YAML) configuration is not read; its settings are not migrated (its upstreamConfig.upstreams route by path, a regex with rewriteTarget: labgate sends every path of a host, unchanged, to one upstream; give each app a host of its own, [[upstream]] hosts = [...])"),
                (n, _) => format!("--{n} is a command flag of oauth2-proxy, not a setting"),
            }));
            continue;
        }
        let spec = options::by_flag(name);
        let kind = spec.map(|s| s.kind);
        let raw = match inline {
            Some(v) => Some(v),
            None if kind == Some(Kind::Bool) => None,
            None => {
                // pflag takes the next argument as the value; for an unknown flag only a
                // next argument that is not itself a flag is read as its value.
                let next = args.get(i).cloned();
                match next {
                    Some(v) if spec.is_some() || !v.starts_with('-') => {
                        i += 1;
                        Some(v)
                    }
                    _ => None,
                }
            }
        };
        let value = match raw {
            None if kind == Some(Kind::Bool) || spec.is_none() => Value::Bool(true),
            None => Value::Text(String::new()),
            Some(v) => {
                expand(&v, env).map_or_else(|| typed(spec, Value::Text(v)), |x| typed(spec, x))
            }
        };
        let key = spec.map_or_else(|| name.to_owned(), |s| s.cfg.to_owned());
        // Repeated list flags add up; anything else: the last one wins.
        if let (Some(Kind::List), Some(prev)) = (kind, out.iter_mut().find(|s| s.key == key)) {
            if let (Value::List(have), Value::List(more)) = (&mut prev.value, &value) {
                have.extend(more.iter().cloned());
                continue;
            }
        }
        out.retain(|s| s.key != key);
        out.push(Setting {
            key,
            shown: format!("--{name}"),
            spec,
            value,
            origin: Origin::Flag,
            app: None,
        });
    }
    out
}

/// `$(VAR)` as the whole value: the container env variable's value or reference.
fn expand(v: &str, env: &[EnvVar]) -> Option<Value> {
    let name = v.strip_prefix("$(")?.strip_suffix(')')?;
    env.iter().find(|e| e.name == name).map(|e| e.value.clone())
}

#[cfg(test)]
mod list_tests {
    use super::split_list;

    #[test]
    fn lists_are_read_as_pflag_reads_them() {
        assert_eq!(split_list("acme,acme/sre"), ["acme", "acme/sre"]);
        assert_eq!(split_list("\"acme/sre\""), ["acme/sre"]);
        assert_eq!(
            split_list("\"acme/sre\",\"acme/ops\""),
            ["acme/sre", "acme/ops"]
        );
        assert_eq!(split_list("\"a,b\",c"), ["a,b", "c"]);
        assert_eq!(split_list(" acme , ,x"), ["acme", "x"]);
        assert!(split_list("").is_empty());
    }

    #[test]
    fn args_text_is_read_as_a_shell_reads_it() {
        let w = super::shell_words(
            "oauth2-proxy --provider=gitlab \\\n  --gitlab-group='acme sre' # the team\n--email-domain=\"*\" // docs' note\n--x=a\\ b\n--open='unbalanced",
        );
        assert_eq!(
            w,
            [
                "oauth2-proxy",
                "--provider=gitlab",
                "--gitlab-group=acme sre",
                "--email-domain=*",
                "--x=a b",
                "--open='unbalanced",
            ]
        );
    }
}
