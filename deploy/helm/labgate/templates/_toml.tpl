{{/*
A map rendered as a TOML document, generically, so that every key of labgate's
configuration can be given as values:

  - a string, number or boolean: `key = value` (a JSON string is a TOML basic string, and
    JSON numbers and booleans are TOML's);
  - a list of scalars (or of lists): an inline array, `key = ["a", "b"]`;
  - a map: a table, `[path.key]`;
  - a list of maps: an array of tables, `[[path.key]]` once per entry;
  - null: left out.

In each table the plain keys come first, then the tables (TOML puts a key after a table
header in that table). Map keys come in sorted order (Go templates range over maps so);
a key that is not a bare key ([A-Za-z0-9_-]+) is quoted.

Usage: include "labgate.toml" (dict "table" $map "path" "")
*/}}
{{- define "labgate.toml" -}}
{{- $path := .path }}
{{- range $key, $value := .table }}
{{- if and (not (kindIs "invalid" $value)) (not (kindIs "map" $value)) (not (include "labgate.toml.isTables" $value)) }}
{{ include "labgate.toml.key" $key }} = {{ toJson $value }}
{{- end }}
{{- end }}
{{- range $key, $value := .table }}
{{- $sub := include "labgate.toml.key" $key }}
{{- if $path }}{{ $sub = printf "%s.%s" $path $sub }}{{ end }}
{{- if kindIs "map" $value }}

[{{ $sub }}]
{{- include "labgate.toml" (dict "table" $value "path" $sub) }}
{{- else if include "labgate.toml.isTables" $value }}
{{- range $value }}

[[{{ $sub }}]]
{{- include "labgate.toml" (dict "table" . "path" $sub) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* "true" for a non-empty list whose entries are all maps (an array of tables). */}}
{{- define "labgate.toml.isTables" -}}
{{- if and (kindIs "slice" .) (gt (len .) 0) }}
{{- $all := true }}
{{- range . }}{{ if not (kindIs "map" .) }}{{ $all = false }}{{ end }}{{ end }}
{{- if $all }}true{{ end }}
{{- end }}
{{- end }}

{{/* A key: bare when it can be, else a quoted (JSON, so TOML basic) string. */}}
{{- define "labgate.toml.key" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . }}{{ . }}{{ else }}{{ toJson . }}{{ end }}
{{- end }}
