{{- define "gatehouse.name" -}}{{ .Release.Name }}{{- end -}}

{{- define "gatehouse.labels" -}}
app.kubernetes.io/name: gatehouse
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "gatehouse.selector" -}}
app.kubernetes.io/name: gatehouse
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "gatehouse.pgbouncerSelector" -}}
app.kubernetes.io/name: pgbouncer
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "gatehouse.databaseSecret" -}}
{{- if .Values.database.existingSecret -}}
{{ .Values.database.existingSecret }}
{{- else if .Values.database.url -}}
{{ include "gatehouse.name" . }}-database
{{- else -}}
{{ fail "set database.existingSecret (a Secret with key \"url\") or database.url: replicas need a shared PostgreSQL database" }}
{{- end -}}
{{- end -}}

{{- define "gatehouse.keySecret" -}}
{{- if .Values.serverKey.existingSecret -}}
{{ .Values.serverKey.existingSecret }}
{{- else -}}
{{ fail "set serverKey.existingSecret: a Secret with key \"key\" (kubectl create secret generic gatehouse-key --from-literal=key=\"$(openssl rand -hex 32)\"); replicas share it, and it must not live in the database" }}
{{- end -}}
{{- end -}}

{{- define "gatehouse.securityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
