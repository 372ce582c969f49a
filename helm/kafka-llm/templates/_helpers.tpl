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
{{- define "kafka-llm.gatewayTerminationGraceSeconds" -}}
{{- $g := .Values.gateway -}}
{{- add (int $g.preStopSeconds) (div (add (int $g.shutdownGraceMs) 999) 1000) (int $g.terminationExtraSeconds) -}}
{{- end -}}

{{- define "kafka-llm.workerTerminationGraceSeconds" -}}
{{- add (div (add (int .Values.worker.shutdownGraceMs) 999) 1000) (int .Values.worker.terminationExtraSeconds) -}}
{{- end -}}

{{/* The chart's own Secret: what the values put in it, if anything. */}}
{{- define "kafka-llm.secretName" -}}
{{- include "kafka-llm.fullname" . -}}
{{- end -}}

{{/* API keys listed in the values go into the chart's Secret. */}}
{{- define "kafka-llm.apiKeysFromChart" -}}
{{- and (eq .Values.gateway.auth.mode "keys") (not .Values.gateway.auth.existingSecret) (not (empty .Values.gateway.auth.apiKeys)) -}}
{{- end -}}

{{/* With mode keys and no key given, the generated-Secret Job makes one. */}}
{{- define "kafka-llm.apiKeysGenerated" -}}
{{- and (eq .Values.gateway.auth.mode "keys") (not .Values.gateway.auth.existingSecret) (empty .Values.gateway.auth.apiKeys) -}}
{{- end -}}

{{- define "kafka-llm.hfTokenFromChart" -}}
{{- and .Values.model.hfToken (not .Values.model.hfTokenSecret) (eq .Values.model.source "download") -}}
{{- end -}}

{{- define "kafka-llm.hasSecret" -}}
{{- or (eq (include "kafka-llm.apiKeysFromChart" .) "true") (ne (include "kafka-llm.kafkaPasswordsFromChart" .) "") (eq (include "kafka-llm.hfTokenFromChart" .) "true") -}}
{{- end -}}

{{/*
The Secret the generated-Secret Job creates once and never changes (Helm does not own it,
so no upgrade, `helm template` or sync can regenerate it), and what it holds:
"key=kind" entries, kind token (the internal token) or api-key (tenant "default").
*/}}
{{- define "kafka-llm.generatedSecretName" -}}
{{- include "kafka-llm.componentName" (list . "generated") -}}
{{- end -}}

{{- define "kafka-llm.generatedKeys" -}}
{{- $keys := list -}}
{{- if not .Values.internalToken.existingSecret -}}{{- $keys = append $keys "internal-token=token" -}}{{- end -}}
{{- if eq (include "kafka-llm.apiKeysGenerated" .) "true" -}}{{- $keys = append $keys "api-keys=api-key" -}}{{- end -}}
{{- join "," $keys -}}
{{- end -}}

{{/* Where the gateways' API keys come from: {"name", "key"} of a Secret. */}}
{{- define "kafka-llm.apiKeysSecret" -}}
{{- $a := .Values.gateway.auth -}}
{{- if $a.existingSecret -}}
{{- dict "name" $a.existingSecret "key" $a.existingSecretKey | toJson -}}
{{- else if $a.apiKeys -}}
{{- dict "name" (include "kafka-llm.secretName" .) "key" "api-keys" | toJson -}}
{{- else -}}
{{- dict "name" (include "kafka-llm.generatedSecretName" .) "key" "api-keys" | toJson -}}
{{- end -}}
{{- end -}}

{{/* The internal token's volume and mount, for the gateway and the worker (KAFKA_LLM_INTERNAL_TOKEN_FILE). A whole-Secret projection, not a subPath: the kubelet updates it in place when the Secret changes (rotation). */}}
{{- define "kafka-llm.internalTokenVolume" -}}
- name: internal-token
  secret:
    secretName: {{ default (include "kafka-llm.generatedSecretName" .) .Values.internalToken.existingSecret }}
    items:
      - key: {{ ternary .Values.internalToken.existingSecretKey "internal-token" (not (empty .Values.internalToken.existingSecret)) }}
        path: token
{{- end -}}

{{- define "kafka-llm.internalTokenVolumeMount" -}}
- name: internal-token
  mountPath: /etc/kafka-llm/internal
  readOnly: true
{{- end -}}

{{/* Where secrets are mounted in the pods, as files (never environment variables). */}}
{{- define "kafka-llm.apiKeysFile" -}}/etc/kafka-llm/api-keys/api-keys{{- end -}}
{{- define "kafka-llm.saslPasswordFile" -}}/etc/kafka-llm/kafka-sasl/password{{- end -}}
{{- define "kafka-llm.kafkaCaFile" -}}/etc/kafka-llm/kafka-ca/ca.crt{{- end -}}
{{- define "kafka-llm.hfTokenFile" -}}/etc/kafka-llm/hf/token{{- end -}}
{{- define "kafka-llm.internalTokenFile" -}}/etc/kafka-llm/internal/token{{- end -}}

{{/* The gateways' consumer group on chat.events (GATEWAY_EVENTS_GROUP_ID), with contracts/config/gateway.ts's default. */}}
{{- define "kafka-llm.gatewayGroupId" -}}
{{- default (printf "%skafka-llm-gateways" .Values.kafka.topicPrefix) .Values.kafka.gatewayGroupId -}}
{{- end -}}

{{/* The components of this release that connect to Kafka, each as its own principal. */}}
{{- define "kafka-llm.kafkaComponents" -}}
{{- $c := list "gateway" "worker" -}}
{{- if .Values.topics.job.enabled -}}{{- $c = append $c "topics" -}}{{- end -}}
{{- $a := .Values.autoscaling -}}
{{- if and $a.enabled (eq $a.engine "keda") (eq $a.keda.trigger "kafka") (not $a.keda.authenticationRef) -}}{{- $c = append $c "autoscaler" -}}{{- end -}}
{{- join " " $c -}}
{{- end -}}

{{/* A component's Kafka user: the values' username, else <fullname>-<component> (the KafkaUser's name). */}}
{{- define "kafka-llm.kafkaUsername" -}}
{{- $root := index . 0 -}}{{- $component := index . 1 -}}
{{- default (include "kafka-llm.componentName" (list $root $component)) (index $root.Values.kafka.sasl $component).username -}}
{{- end -}}

{{/* A component's password: {"name", "key"} of its Secret (its own, the KafkaUser's, or the chart's). */}}
{{- define "kafka-llm.kafkaPasswordSecret" -}}
{{- $root := index . 0 -}}{{- $component := index . 1 -}}
{{- $u := index $root.Values.kafka.sasl $component -}}
{{- if $u.existingSecret -}}
{{- dict "name" $u.existingSecret "key" $u.existingSecretKey | toJson -}}
{{- else if $root.Values.kafka.strimzi.users -}}
{{- dict "name" (include "kafka-llm.kafkaUsername" (list $root $component)) "key" "password" | toJson -}}
{{- else -}}
{{- dict "name" (include "kafka-llm.secretName" $root) "key" (printf "kafka-%s-password" $component) | toJson -}}
{{- end -}}
{{- end -}}

{{/* Components whose password the values hold (into the chart's Secret), space-separated; empty when none. */}}
{{- define "kafka-llm.kafkaPasswordsFromChart" -}}
{{- $root := . -}}
{{- $out := list -}}
{{- if and .Values.kafka.sasl.enabled (not .Values.kafka.strimzi.users) -}}
{{- range $c := splitList " " (include "kafka-llm.kafkaComponents" $root) -}}
{{- $u := index $root.Values.kafka.sasl $c -}}
{{- if and (not $u.existingSecret) $u.password -}}{{- $out = append $out $c -}}{{- end -}}
{{- end -}}
{{- end -}}
{{- join " " $out -}}
{{- end -}}

{{/* A component's Kafka username as the pods read it (KAFKA_SASL_USERNAME); nothing without SASL. */}}
{{- define "kafka-llm.kafkaUsernameEnv" -}}
{{- $root := index . 0 -}}
{{- if $root.Values.kafka.sasl.enabled }}
KAFKA_SASL_USERNAME: {{ include "kafka-llm.kafkaUsername" . | quote }}
{{- end }}
{{- end -}}

{{/* Kafka credential volumes (this component's SASL password, the CA), for every pod that talks to Kafka. */}}
{{- define "kafka-llm.kafkaVolumes" -}}
{{- $root := index . 0 -}}{{- $component := index . 1 -}}
{{- if $root.Values.kafka.sasl.enabled }}
{{- $s := include "kafka-llm.kafkaPasswordSecret" . | fromJson }}
- name: kafka-sasl
  secret:
    secretName: {{ $s.name }}
    items:
      - key: {{ $s.key }}
        path: password
{{- end }}
{{- if and $root.Values.kafka.tls.enabled $root.Values.kafka.tls.caSecret }}
- name: kafka-ca
  secret:
    secretName: {{ $root.Values.kafka.tls.caSecret }}
    items:
      - key: {{ $root.Values.kafka.tls.caSecretKey }}
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

{{/*
A component's Kafka ACLs as Strimzi writes them, the same rules as contracts/kafka-acls.ts
componentAcls (test/deploy/chart-kafka-users.test.ts holds them equal): each rule is
[type, name, patternType, operations]; Kafka's "prefixed" is Strimzi's "prefix".
*/}}
{{- define "kafka-llm.kafkaAcls" -}}
{{- $root := index . 0 -}}{{- $component := index . 1 -}}
{{- $p := $root.Values.kafka.topicPrefix -}}
{{- $requests := print $p "chat.requests" -}}{{- $events := print $p "chat.events" -}}{{- $memory := print $p "chat.memory" -}}
{{- $history := print $p "chat.history" -}}{{- $control := print $p "chat.control" -}}{{- $dlq := print $p "chat.requests.dlq" -}}
{{- $wg := $root.Values.kafka.groupId -}}
{{- $gg := include "kafka-llm.gatewayGroupId" $root -}}
{{- $rules := list -}}
{{- if eq $component "gateway" -}}
{{- $rules = list (list "topic" $requests "literal" (list "Write" "Read" "DescribeConfigs")) (list "topic" $control "literal" (list "Write" "DescribeConfigs")) (list "topic" $events "literal" (list "Read" "DescribeConfigs")) (list "topic" $history "literal" (list "Read" "DescribeConfigs")) (list "group" $gg "literal" (list "Read")) (list "group" (print $gg ".") "prefix" (list "Read")) (list "group" $wg "literal" (list "Describe")) -}}
{{- else if eq $component "worker" -}}
{{- $rules = list (list "topic" $requests "literal" (list "Read" "DescribeConfigs")) (list "topic" $control "literal" (list "Read" "DescribeConfigs")) (list "topic" $events "literal" (list "Write" "Read" "DescribeConfigs")) (list "topic" $memory "literal" (list "Write" "Read" "DescribeConfigs")) (list "topic" $history "literal" (list "Write" "Read" "DescribeConfigs")) (list "topic" $dlq "literal" (list "Write" "DescribeConfigs")) (list "group" $wg "literal" (list "Read")) (list "group" (print $wg ".") "prefix" (list "Read")) (list "transactionalId" (print $wg ".tx.") "prefix" (list "Write" "Describe")) -}}
{{- else if eq $component "topics" -}}
{{- range $t := list $requests $events $memory $history $control $dlq -}}
{{- $rules = append $rules (list "topic" $t "literal" (list "Create" "Describe" "DescribeConfigs")) -}}
{{- end -}}
{{- else if eq $component "autoscaler" -}}
{{- $rules = list (list "topic" $requests "literal" (list "Describe")) (list "group" $wg "literal" (list "Describe")) -}}
{{- end -}}
{{- range $rules }}
- resource:
    type: {{ index . 0 }}
    name: {{ index . 1 | quote }}
    patternType: {{ index . 2 }}
  operations: {{ index . 3 | toJson }}
  host: "*"
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
{{- include "kafka-llm.validateKafkaAuth" . -}}
{{- if gt (mul 3 (int .Values.worker.heartbeatIntervalMs)) (int .Values.worker.sessionTimeoutMs) -}}
{{- fail "worker.heartbeatIntervalMs must be at most a third of worker.sessionTimeoutMs" -}}
{{- end -}}
{{- if and (eq .Values.gateway.auth.mode "none") (or .Values.gateway.auth.apiKeys .Values.gateway.auth.existingSecret) -}}
{{- fail "gateway.auth.mode none, yet API keys are set: remove them or use mode keys" -}}
{{- end -}}
{{- end -}}

{{/* Kafka credentials: one principal per component, never a password in clear on the wire. */}}
{{- define "kafka-llm.validateKafkaAuth" -}}
{{- $root := . -}}
{{- $k := .Values.kafka -}}
{{- $wg := $k.groupId -}}{{- $gg := include "kafka-llm.gatewayGroupId" . -}}
{{- if or (eq $wg $gg) (hasPrefix (print $gg ".") $wg) (hasPrefix (print $wg ".") $gg) -}}
{{- fail (printf "kafka.groupId (%s) and the gateways' group (%s, kafka.gatewayGroupId) must not be one another or start with the other and a dot: each component's ACLs cover its group and \"<group>.\" as a prefix" $wg $gg) -}}
{{- end -}}
{{- if $k.strimzi.users -}}
{{- if not $k.sasl.enabled -}}
{{- fail "kafka.strimzi.users needs kafka.sasl.enabled (the KafkaUsers are SCRAM-SHA-512 users)" -}}
{{- end -}}
{{- if ne $k.sasl.mechanism "scram-sha-512" -}}
{{- fail (printf "kafka.strimzi.users makes SCRAM-SHA-512 users: set kafka.sasl.mechanism scram-sha-512 (not %s)" $k.sasl.mechanism) -}}
{{- end -}}
{{- end -}}
{{- if $k.sasl.enabled -}}
{{- if and (eq $k.sasl.mechanism "plain") (not $k.tls.enabled) -}}
{{- fail "kafka.sasl.mechanism plain without kafka.tls.enabled would send every password in clear: enable TLS, or use scram-sha-512 (local and CI only without TLS)" -}}
{{- end -}}
{{- $seen := dict -}}
{{- range $c := splitList " " (include "kafka-llm.kafkaComponents" $root) -}}
{{- $u := index $k.sasl $c -}}
{{- if not (or $u.existingSecret $k.strimzi.users $u.password) -}}
{{- fail (printf "kafka.sasl.%s needs existingSecret (a Secret with its password), kafka.strimzi.users, or password (local and CI only)" $c) -}}
{{- end -}}
{{- $name := include "kafka-llm.kafkaUsername" (list $root $c) -}}
{{- if hasKey $seen $name -}}
{{- fail (printf "kafka.sasl.%s and kafka.sasl.%s are both user %s: each component needs a principal of its own (its own ACLs)" (get $seen $name) $c $name) -}}
{{- end -}}
{{- $_ := set $seen $name $c -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The OTEL_* variables of tracing (docs/tracing.md); nothing while it is off. */}}
{{- define "kafka-llm.tracingEnv" -}}
{{- $t := .Values.tracing -}}
{{- if $t.enabled }}
OTEL_EXPORTER_OTLP_ENDPOINT: {{ $t.otlpEndpoint | quote }}
OTEL_TRACES_SAMPLER: {{ $t.sampler | quote }}
OTEL_TRACES_SAMPLER_ARG: {{ $t.samplerRatio | toString | quote }}
OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT: {{ $t.captureMessageContent | toString | quote }}
{{- with $t.resourceAttributes }}
OTEL_RESOURCE_ATTRIBUTES: {{ . | quote }}
{{- end }}
{{- end }}
{{- end -}}
