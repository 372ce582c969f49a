{{/* Names and labels, the standard way (app.kubernetes.io/*). */}}
{{- define "kafka-llm.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kafka-llm.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A component's object name: <fullname>-<component>, within 63 characters. */}}
{{- define "kafka-llm.componentName" -}}
{{- $root := index . 0 -}}{{- $component := index . 1 -}}
{{- printf "%s-%s" (include "kafka-llm.fullname" $root | trunc (int (sub 62 (len $component)))) $component | trimSuffix "-" -}}
{{- end -}}

{{- define "kafka-llm.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kafka-llm.selectorLabels" -}}
{{- $root := index . 0 -}}{{- $component := index . 1 -}}
app.kubernetes.io/name: {{ include "kafka-llm.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ $component }}
{{- end -}}

{{- define "kafka-llm.labels" -}}
{{- $root := index . 0 -}}
helm.sh/chart: {{ include "kafka-llm.chart" $root }}
{{ include "kafka-llm.selectorLabels" . }}
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
app.kubernetes.io/part-of: kafka-llm
{{- with $root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "kafka-llm.image" -}}
{{- $root := index . 0 -}}{{- $image := index . 1 -}}
{{- printf "%s:%s" $image.repository (default $root.Chart.AppVersion $image.tag) -}}
{{- end -}}

{{- define "kafka-llm.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kafka-llm.componentName" (list . "worker")) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The worker's grace period: its own SHUTDOWN_GRACE_MS, rounded up, plus the time to leave cleanly. */}}
{{- define "kafka-llm.workerTerminationGraceSeconds" -}}
{{- add (div (add (int .Values.worker.shutdownGraceMs) 999) 1000) (int .Values.worker.terminationExtraSeconds) -}}
{{- end -}}

{{/* The chart's own Secret: what it holds, if anything. */}}
{{- define "kafka-llm.secretName" -}}
{{- include "kafka-llm.fullname" . -}}
{{- end -}}

{{- define "kafka-llm.apiKeysFromChart" -}}
{{- and (eq .Values.gateway.auth.mode "keys") (not .Values.gateway.auth.existingSecret) -}}
{{- end -}}

{{- define "kafka-llm.saslPasswordFromChart" -}}
{{- and .Values.kafka.sasl.enabled (not .Values.kafka.sasl.existingSecret) -}}
{{- end -}}

{{- define "kafka-llm.hfTokenFromChart" -}}
{{- and .Values.model.hfToken (not .Values.model.hfTokenSecret) (eq .Values.model.source "download") -}}
{{- end -}}

{{- define "kafka-llm.internalTokenFromChart" -}}
{{- not .Values.internalToken.existingSecret -}}
{{- end -}}

{{- define "kafka-llm.hasSecret" -}}
{{- or (eq (include "kafka-llm.apiKeysFromChart" .) "true") (eq (include "kafka-llm.saslPasswordFromChart" .) "true") (eq (include "kafka-llm.hfTokenFromChart" .) "true") (eq (include "kafka-llm.internalTokenFromChart" .) "true") -}}
{{- end -}}

{{/* The workers' internal token: the one already in the release's Secret (kept across upgrades), else a new random one. */}}
{{- define "kafka-llm.internalToken" -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "kafka-llm.secretName" .) -}}
{{- if and $existing $existing.data (hasKey $existing.data "internal-token") -}}
{{- index $existing.data "internal-token" | b64dec -}}
{{- else -}}
{{- randAlphaNum 48 -}}
{{- end -}}
{{- end -}}

{{/* The internal token's volume and mount, for the gateway and the worker (KAFKA_LLM_INTERNAL_TOKEN_FILE). */}}
{{- define "kafka-llm.internalTokenVolume" -}}
- name: internal-token
  secret:
    secretName: {{ default (include "kafka-llm.secretName" .) .Values.internalToken.existingSecret }}
    items:
      - key: {{ ternary .Values.internalToken.existingSecretKey "internal-token" (not (empty .Values.internalToken.existingSecret)) }}
        path: token
{{- end -}}

{{- define "kafka-llm.internalTokenVolumeMount" -}}
- name: internal-token
  mountPath: /etc/kafka-llm/internal
  readOnly: true
{{- end -}}

{{/*
API keys: the values' list, else the key already in the release's Secret (kept across
upgrades), else a new random key for tenant "default".
*/}}
{{- define "kafka-llm.apiKeys" -}}
{{- if .Values.gateway.auth.apiKeys -}}
{{- join "\n" .Values.gateway.auth.apiKeys -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "kafka-llm.secretName" .) -}}
{{- if and $existing $existing.data (hasKey $existing.data "api-keys") -}}
{{- index $existing.data "api-keys" | b64dec -}}
{{- else -}}
{{- printf "default:%s" (randAlphaNum 40) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Where secrets are mounted in the pods, as files (never environment variables). */}}
{{- define "kafka-llm.apiKeysFile" -}}/etc/kafka-llm/api-keys/api-keys{{- end -}}
{{- define "kafka-llm.saslPasswordFile" -}}/etc/kafka-llm/kafka-sasl/password{{- end -}}
{{- define "kafka-llm.kafkaCaFile" -}}/etc/kafka-llm/kafka-ca/ca.crt{{- end -}}
{{- define "kafka-llm.hfTokenFile" -}}/etc/kafka-llm/hf/token{{- end -}}
{{- define "kafka-llm.internalTokenFile" -}}/etc/kafka-llm/internal/token{{- end -}}

{{/* Kafka credential volumes (SASL password, CA), for every pod that talks to Kafka. */}}
{{- define "kafka-llm.kafkaVolumes" -}}
{{- if .Values.kafka.sasl.enabled }}
- name: kafka-sasl
  secret:
    secretName: {{ default (include "kafka-llm.secretName" .) .Values.kafka.sasl.existingSecret }}
    items:
      - key: {{ ternary .Values.kafka.sasl.existingSecretKey "kafka-sasl-password" (not (empty .Values.kafka.sasl.existingSecret)) }}
        path: password
{{- end }}
{{- if and .Values.kafka.tls.enabled .Values.kafka.tls.caSecret }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafka.tls.caSecret }}
    items:
      - key: {{ .Values.kafka.tls.caSecretKey }}
        path: ca.crt
{{- end }}
{{- end -}}

{{- define "kafka-llm.kafkaVolumeMounts" -}}
{{- if .Values.kafka.sasl.enabled }}
- name: kafka-sasl
  mountPath: /etc/kafka-llm/kafka-sasl
  readOnly: true
{{- end }}
{{- if and .Values.kafka.tls.enabled .Values.kafka.tls.caSecret }}
- name: kafka-ca
  mountPath: /etc/kafka-llm/kafka-ca
  readOnly: true
{{- end }}
{{- end -}}

{{/* Label matchers selecting this release's series, as the ServiceMonitor/PodMonitor label them. */}}
{{- define "kafka-llm.promMatchers" -}}
namespace="{{ .Release.Namespace }}",app_kubernetes_io_instance="{{ .Release.Name }}"
{{- end -}}

{{/*
The autoscaling signal as PromQL, given label matchers (M), the slots assumed when no
worker reports them (S) and the least turn time counted (F):
  lag:            max(total lag)                       waiting requests
  backlogSeconds: max(total lag) × mean turn ÷ slots   seconds one worker needs to clear them
The gateway replicas all report the same lag, hence max. deploy/prometheus-adapter has the
same expressions as adapter rules; the local check evaluates both against real metrics.
*/}}
{{- define "kafka-llm.signalQuery" -}}
{{- $signal := index . 0 -}}{{- $m := index . 1 -}}{{- $slots := index . 2 -}}{{- $floor := index . 3 -}}
{{- if eq $signal "lag" -}}
max(kafka_llm_consumer_group_total_lag{ {{- $m -}} })
{{- else -}}
max(kafka_llm_consumer_group_total_lag{ {{- $m -}} }) * scalar(clamp_min(max(kafka_llm_recent_turn_duration_seconds{ {{- $m -}} }), {{ $floor }}) or vector({{ $floor }})) / scalar(max(kafka_llm_worker_slots{ {{- $m -}} }) or vector({{ $slots }}))
{{- end -}}
{{- end -}}

{{- define "kafka-llm.signalTarget" -}}
{{- if eq .Values.autoscaling.signal "lag" -}}
{{- .Values.autoscaling.target.lag -}}
{{- else -}}
{{- .Values.autoscaling.target.backlogSeconds -}}
{{- end -}}
{{- end -}}

{{/* Settings that cannot be checked by the schema alone. */}}
{{- define "kafka-llm.validate" -}}
{{- $a := .Values.autoscaling -}}
{{- if $a.enabled -}}
{{- if gt (int $a.maxReplicas) (int .Values.kafka.requestPartitions) -}}
{{- fail (printf "autoscaling.maxReplicas (%d) is more than kafka.requestPartitions (%d): a worker beyond the partition count gets no work. Raise the partitions or lower maxReplicas." (int $a.maxReplicas) (int .Values.kafka.requestPartitions)) -}}
{{- end -}}
{{- if lt (int $a.maxReplicas) (int $a.minReplicas) -}}
{{- fail (printf "autoscaling.maxReplicas (%d) is less than autoscaling.minReplicas (%d)" (int $a.maxReplicas) (int $a.minReplicas)) -}}
{{- end -}}
{{- if and (eq $a.engine "hpa") (lt (int $a.minReplicas) 1) -}}
{{- fail "autoscaling.minReplicas 0 needs autoscaling.engine keda (an HPA cannot scale to zero)" -}}
{{- end -}}
{{- if and (eq $a.engine "keda") (eq $a.keda.trigger "kafka") -}}
{{- if ne $a.signal "lag" -}}
{{- fail (printf "autoscaling.keda.trigger kafka scales on the group's lag (waiting requests), not %s: set autoscaling.signal lag (target autoscaling.target.lag), or autoscaling.keda.trigger prometheus" $a.signal) -}}
{{- end -}}
{{- if or (lt (float64 $a.target.lag) 1.0) (ne (float64 $a.target.lag) (floor $a.target.lag)) -}}
{{- fail (printf "autoscaling.target.lag (%v) must be a whole number of requests, at least 1, for autoscaling.keda.trigger kafka (its lagThreshold)" $a.target.lag) -}}
{{- end -}}
{{- if ne (float64 $a.keda.activationThreshold) (floor $a.keda.activationThreshold) -}}
{{- fail (printf "autoscaling.keda.activationThreshold (%v) must be a whole number of requests for autoscaling.keda.trigger kafka (its activationLagThreshold)" $a.keda.activationThreshold) -}}
{{- end -}}
{{- end -}}
{{- else if gt (int .Values.worker.replicas) (int .Values.kafka.requestPartitions) -}}
{{- fail (printf "worker.replicas (%d) is more than kafka.requestPartitions (%d): the extra workers would get no work" (int .Values.worker.replicas) (int .Values.kafka.requestPartitions)) -}}
{{- end -}}
{{- if and (eq .Values.model.source "pvc") (or (not .Values.model.pvc.claimName) (not .Values.model.pvc.file)) -}}
{{- fail "model.source pvc needs model.pvc.claimName and model.pvc.file" -}}
{{- end -}}
{{- if and (eq .Values.model.source "download") (not (regexMatch "^(hf:|https?://)" .Values.model.uri)) -}}
{{- fail (printf "model.source download needs model.uri to be an hf: URI or an https URL (got %q); for a file in a claim use model.source pvc" .Values.model.uri) -}}
{{- end -}}
{{- if and .Values.kafka.sasl.enabled (not .Values.kafka.sasl.username) -}}
{{- fail "kafka.sasl.enabled needs kafka.sasl.username" -}}
{{- end -}}
{{- if and .Values.kafka.sasl.enabled (not .Values.kafka.sasl.existingSecret) (not .Values.kafka.sasl.password) -}}
{{- fail "kafka.sasl.enabled needs kafka.sasl.password or kafka.sasl.existingSecret" -}}
{{- end -}}
{{- if gt (mul 3 (int .Values.worker.heartbeatIntervalMs)) (int .Values.worker.sessionTimeoutMs) -}}
{{- fail "worker.heartbeatIntervalMs must be at most a third of worker.sessionTimeoutMs" -}}
{{- end -}}
{{- if and (eq .Values.gateway.auth.mode "none") (or .Values.gateway.auth.apiKeys .Values.gateway.auth.existingSecret) -}}
{{- fail "gateway.auth.mode none, yet API keys are set: remove them or use mode keys" -}}
{{- end -}}
{{- end -}}
