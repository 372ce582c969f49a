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
{{- if and (eq (include "kafka-llm.autoscaled" .) "true") (eq $a.engine "keda") (eq $a.keda.trigger "kafka") (not $a.keda.authenticationRef) -}}{{- $c = append $c "autoscaler" -}}{{- end -}}
{{- join " " $c -}}
{{- end -}}

{{/* "true" when some pool is autoscaled (autoscaling.enabled, or a pool's own). */}}
{{- define "kafka-llm.autoscaled" -}}
{{- $any := false -}}
{{- range $pool := (include "kafka-llm.pools" . | fromJson).pools -}}
{{- if $pool.autoscaling.enabled -}}{{- $any = true -}}{{- end -}}
{{- end -}}
{{- $any -}}
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
{{- $models := print $p "chat.models" -}}
{{- /* Every pool but the default has its topics under these prefixes and its group under the workers' (contracts/pools.ts). */ -}}
{{- $poolRequests := print $p "chat.requests.pool." -}}{{- $poolMemory := print $p "chat.memory.pool." -}}
{{- $wg := $root.Values.kafka.groupId -}}
{{- $gg := include "kafka-llm.gatewayGroupId" $root -}}
{{- $rules := list -}}
{{- if eq $component "gateway" -}}
{{- $rules = list (list "topic" $requests "literal" (list "Write" "Read" "DescribeConfigs")) (list "topic" $poolRequests "prefix" (list "Write" "Read" "DescribeConfigs")) (list "topic" $control "literal" (list "Write" "DescribeConfigs")) (list "topic" $events "literal" (list "Read" "DescribeConfigs")) (list "topic" $history "literal" (list "Read" "DescribeConfigs")) (list "topic" $models "literal" (list "Read" "DescribeConfigs")) (list "group" $gg "literal" (list "Read")) (list "group" (print $gg ".") "prefix" (list "Read")) (list "group" $wg "literal" (list "Describe")) (list "group" (print $wg ".pool.") "prefix" (list "Describe")) -}}
{{- else if eq $component "worker" -}}
{{- /* Write on the request topics: a conversation moving to another pool is passed on by its owner (worker/move.ts). */ -}}
{{- $rules = list (list "topic" $requests "literal" (list "Read" "Write" "DescribeConfigs")) (list "topic" $poolRequests "prefix" (list "Read" "Write" "DescribeConfigs")) (list "topic" $control "literal" (list "Read" "DescribeConfigs")) (list "topic" $events "literal" (list "Write" "Read" "DescribeConfigs")) (list "topic" $memory "literal" (list "Write" "Read" "DescribeConfigs")) (list "topic" $poolMemory "prefix" (list "Write" "Read" "DescribeConfigs")) (list "topic" $history "literal" (list "Write" "Read" "DescribeConfigs")) (list "topic" $dlq "literal" (list "Write" "DescribeConfigs")) (list "topic" $models "literal" (list "Write" "DescribeConfigs")) (list "group" $wg "literal" (list "Read")) (list "group" (print $wg ".") "prefix" (list "Read")) (list "transactionalId" (print $wg ".tx.") "prefix" (list "Write" "Describe")) -}}
{{- else if eq $component "topics" -}}
{{- range $t := list $requests $events $memory $history $control $dlq -}}
{{- $rules = append $rules (list "topic" $t "literal" (list "Create" "Describe" "DescribeConfigs")) -}}
{{- end -}}
{{- $rules = append $rules (list "topic" $poolRequests "prefix" (list "Create" "Describe" "DescribeConfigs")) -}}
{{- $rules = append $rules (list "topic" $poolMemory "prefix" (list "Create" "Describe" "DescribeConfigs")) -}}
{{- /* The Job declares the release's pools on chat.models and removes those it no longer has. */ -}}
{{- $rules = append $rules (list "topic" $models "literal" (list "Create" "Describe" "DescribeConfigs" "Write" "Read")) -}}
{{- else if eq $component "autoscaler" -}}
{{- $rules = list (list "topic" $requests "literal" (list "Describe")) (list "topic" $poolRequests "prefix" (list "Describe")) (list "group" $wg "literal" (list "Describe")) (list "group" (print $wg ".pool.") "prefix" (list "Describe")) -}}
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
{{- include "kafka-llm.targetOf" .Values.autoscaling -}}
{{- end -}}

{{/* The target per worker of an autoscaling dict (a pool's): its signal's. */}}
{{- define "kafka-llm.targetOf" -}}
{{- if eq .signal "lag" -}}
{{- .target.lag -}}
{{- else -}}
{{- .target.backlogSeconds -}}
{{- end -}}
{{- end -}}

{{/* A pool's series: the release's, and (pools declared) the pool's label. */}}
{{- define "kafka-llm.poolPromMatchers" -}}
{{- $root := index . 0 -}}{{- $pool := index . 1 -}}
{{- include "kafka-llm.promMatchers" $root -}}
{{- if not $pool.legacy -}},pool="{{ $pool.name }}"{{- end -}}
{{- end -}}

{{/* Settings that cannot be checked by the schema alone. */}}
{{- define "kafka-llm.validate" -}}
{{- $root := . -}}
{{- $pools := (include "kafka-llm.pools" . | fromJson).pools -}}
{{- range $pool := $pools -}}
{{- include "kafka-llm.validatePool" (list $root $pool) -}}
{{- end -}}
{{- if .Values.pools -}}
{{- $names := dict -}}{{- $models := dict -}}
{{- range $pool := $pools -}}
{{- if hasKey $names $pool.name -}}
{{- fail (printf "pools: two pools are named %s: each pool needs a name of its own (it names its Deployment, topics and consumer group)" $pool.name) -}}
{{- end -}}
{{- $_ := set $names $pool.name true -}}
{{- $served := list $pool.modelName -}}
{{- range $adapter := $pool.adapters -}}{{- $served = append $served $adapter.name -}}{{- end -}}
{{- range $model := $served -}}
{{- if hasKey $models $model -}}
{{- fail (printf "pools: model name %s is served by pool %s and by pool %s: a model name must name one model of one pool (the gateway routes requests by it)" $model (get $models $model) $pool.name) -}}
{{- end -}}
{{- $_ := set $models $model $pool.name -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and .Values.model.name (get .Values.gateway.env "MODEL_NAME") (ne .Values.model.name (get .Values.gateway.env "MODEL_NAME")) -}}
{{- fail (printf "model.name (%s) and gateway.env.MODEL_NAME (%s) differ: set one of them" .Values.model.name (get .Values.gateway.env "MODEL_NAME")) -}}
{{- end -}}
{{- include "kafka-llm.validateKafkaAuth" . -}}
{{- if gt (mul 3 (int .Values.worker.heartbeatIntervalMs)) (int .Values.worker.sessionTimeoutMs) -}}
{{- fail "worker.heartbeatIntervalMs must be at most a third of worker.sessionTimeoutMs" -}}
{{- end -}}
{{- if and (eq .Values.gateway.auth.mode "none") (or .Values.gateway.auth.apiKeys .Values.gateway.auth.existingSecret) -}}
{{- fail "gateway.auth.mode none, yet API keys are set: remove them or use mode keys" -}}
{{- end -}}
{{- end -}}

{{/* One pool's autoscaling and model; pools: [] speaks of the top-level values, a pool of "pools[<name>]". */}}
{{- define "kafka-llm.validatePool" -}}
{{- $root := index . 0 -}}{{- $pool := index . 1 -}}
{{- $a := $pool.autoscaling -}}
{{- $at := ternary "" (printf "pools[%s]." $pool.name) $pool.legacy -}}
{{- $partitions := int $root.Values.kafka.requestPartitions -}}
{{- if $a.enabled -}}
{{- if gt (int $a.maxReplicas) $partitions -}}
{{- fail (printf "%sautoscaling.maxReplicas (%d) is more than kafka.requestPartitions (%d): a worker beyond the partition count gets no work. Raise the partitions or lower maxReplicas." $at (int $a.maxReplicas) $partitions) -}}
{{- end -}}
{{- if lt (int $a.maxReplicas) (int $a.minReplicas) -}}
{{- fail (printf "%sautoscaling.maxReplicas (%d) is less than %sautoscaling.minReplicas (%d)" $at (int $a.maxReplicas) $at (int $a.minReplicas)) -}}
{{- end -}}
{{- if and (eq $a.engine "hpa") (lt (int $a.minReplicas) 1) -}}
{{- fail (printf "%sautoscaling.minReplicas 0 needs autoscaling.engine keda (an HPA cannot scale to zero)" $at) -}}
{{- end -}}
{{- if and (eq $a.engine "keda") (eq $a.keda.trigger "kafka") -}}
{{- if ne $a.signal "lag" -}}
{{- fail (printf "autoscaling.keda.trigger kafka scales on the group's lag (waiting requests), not %s: set %sautoscaling.signal lag (target %sautoscaling.target.lag), or autoscaling.keda.trigger prometheus" $a.signal $at $at) -}}
{{- end -}}
{{- if or (lt (float64 $a.target.lag) 1.0) (ne (float64 $a.target.lag) (floor $a.target.lag)) -}}
{{- fail (printf "%sautoscaling.target.lag (%v) must be a whole number of requests, at least 1, for autoscaling.keda.trigger kafka (its lagThreshold)" $at $a.target.lag) -}}
{{- end -}}
{{- if ne (float64 $a.keda.activationThreshold) (floor $a.keda.activationThreshold) -}}
{{- fail (printf "%sautoscaling.keda.activationThreshold (%v) must be a whole number of requests for autoscaling.keda.trigger kafka (its activationLagThreshold)" $at $a.keda.activationThreshold) -}}
{{- end -}}
{{- end -}}
{{- else if gt (int $pool.replicas) $partitions -}}
{{- fail (printf "%s (%d) is more than kafka.requestPartitions (%d): the extra workers would get no work" (ternary "worker.replicas" (printf "pools[%s].replicas" $pool.name) $pool.legacy) (int $pool.replicas) $partitions) -}}
{{- end -}}
{{- $model := ternary "model" (printf "pools[%s].model" $pool.name) $pool.legacy -}}
{{- if and (eq $pool.model.source "pvc") (or (not $pool.model.pvc.claimName) (not $pool.model.pvc.file)) -}}
{{- fail (printf "%s.source pvc needs %s.pvc.claimName and %s.pvc.file" $model $model $model) -}}
{{- end -}}
{{- if and (eq $pool.model.source "download") (not (regexMatch "^(hf:|https?://)" $pool.model.uri)) -}}
{{- fail (printf "%s.source download needs %s.uri to be an hf: URI or an https URL (got %q); for a file in a claim use %s.source pvc" $model $model $pool.model.uri $model) -}}
{{- end -}}
{{- range $adapter := $pool.adapters -}}
{{- $remote := regexMatch "^(hf:|https?://)" $adapter.uri -}}
{{- if and (eq $pool.model.source "download") (not $remote) -}}
{{- fail (printf "pools[%s].adapters[%s].uri must be an hf: URI or an https URL (got %q): the pool's model is downloaded (model.source download), and its adapters are fetched beside it" $pool.name $adapter.name $adapter.uri) -}}
{{- end -}}
{{- if and (eq $pool.model.source "pvc") $remote -}}
{{- fail (printf "pools[%s].adapters[%s].uri must be a file in the model's claim (got %q): the pool's model comes from a claim (model.source pvc), mounted read-only" $pool.name $adapter.name $adapter.uri) -}}
{{- end -}}
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

{{/*
Model pools (contracts/pools.ts): a pool is one model, and the LoRA adapters it serves under
further names, on workers of its own, with its own request and memory topics and consumer
group, scaled on its own lag. pools: [] is one pool, "default", from model.*, worker.* and
autoscaling.*, rendered as the chart always rendered its workers (legacy: the object names
and labels of before pools). Non-empty: each pool's own Deployment, HPA or ScaledObject and
PDB, named <fullname>-worker-<pool> and labelled kafka-llm/pool: <pool>; whatever a pool
leaves out comes from model.*, worker.* and autoscaling.*.
*/}}

{{/* The name clients give in `model` for the default pool of pools: []: model.name, else the gateway's MODEL_NAME (gateway.env), else its default. */}}
{{- define "kafka-llm.defaultModelName" -}}
{{- default (default "kafka-llm" (get .Values.gateway.env "MODEL_NAME")) .Values.model.name -}}
{{- end -}}

{{/* A dict with another laid over it, maps merged key by key (false and 0 override too, unlike sprig's mergeOverwrite); as JSON. */}}
{{- define "kafka-llm.overlay" -}}
{{- $base := deepCopy (index . 0) -}}
{{- range $k, $v := index . 1 -}}
{{- if and (kindIs "map" $v) (kindIs "map" (get $base $k)) -}}
{{- $_ := set $base $k (include "kafka-llm.overlay" (list (get $base $k) $v) | fromJson) -}}
{{- else -}}
{{- $_ := set $base $k $v -}}
{{- end -}}
{{- end -}}
{{- toJson $base -}}
{{- end -}}

{{/*
The release's pools, resolved, as JSON {"pools": [...]}; each:
  name, legacy (pools: []), objectName (Deployment, HPA, ScaledObject and PDB), modelName,
  model {source, uri, pvc {claimName, file}}, adapters [{name, uri}], adapterSlots, gpu, slots, replicas,
  resources, autoscaling (autoscaling.* with the pool's overrides), requestsTopic, group.
*/}}
{{- define "kafka-llm.pools" -}}
{{- $root := . -}}
{{- $w := .Values.worker -}}
{{- $p := .Values.kafka.topicPrefix -}}
{{- $wg := .Values.kafka.groupId -}}
{{- $out := list -}}
{{- if not .Values.pools -}}
{{- $out = append $out (dict "name" "default" "legacy" true "objectName" (include "kafka-llm.componentName" (list $root "worker")) "modelName" (include "kafka-llm.defaultModelName" $root) "model" (pick .Values.model "source" "uri" "pvc") "adapters" (list) "gpu" $w.gpu.enabled "slots" $w.slots "replicas" $w.replicas "resources" $w.resources "autoscaling" .Values.autoscaling "requestsTopic" (print $p "chat.requests") "group" $wg) -}}
{{- else -}}
{{- range $pool := .Values.pools -}}
{{- $m := default (dict) $pool.model -}}
{{- $pvc := default (dict) $m.pvc -}}
{{- $model := dict "source" (default $root.Values.model.source $m.source) "uri" (default $root.Values.model.uri $m.uri) "pvc" (dict "claimName" (default $root.Values.model.pvc.claimName $pvc.claimName) "file" (default $root.Values.model.pvc.file $pvc.file)) -}}
{{- $gpu := $w.gpu.enabled -}}
{{- if $pool.device -}}{{- $gpu = eq $pool.device "gpu" -}}{{- end -}}
{{- $default := eq $pool.name "default" -}}
{{- $out = append $out (dict "name" $pool.name "legacy" false "objectName" (include "kafka-llm.componentName" (list $root (printf "worker-%s" $pool.name))) "modelName" $m.name "model" $model "adapters" (default (list) $pool.adapters) "adapterSlots" (default 1 $pool.adapterSlots) "gpu" $gpu "slots" (default $w.slots $pool.slots) "replicas" (ternary $pool.replicas $w.replicas (hasKey $pool "replicas")) "resources" (ternary $pool.resources $w.resources (hasKey $pool "resources")) "autoscaling" (include "kafka-llm.overlay" (list $root.Values.autoscaling (default (dict) $pool.autoscaling)) | fromJson) "requestsTopic" (ternary (print $p "chat.requests") (printf "%schat.requests.pool.%s" $p $pool.name) $default) "group" (ternary $wg (printf "%s.pool.%s" $wg $pool.name) $default)) -}}
{{- end -}}
{{- end -}}
{{- dict "pools" $out | toJson -}}
{{- end -}}

{{/* A pool's labels beside the component's: kafka-llm/pool (none for pools: [], whose objects keep the labels of before pools). */}}
{{- define "kafka-llm.poolLabels" -}}
{{- if not .legacy -}}
kafka-llm/pool: {{ .name | quote }}
{{- end -}}
{{- end -}}

{{/* What the topics Job declares on chat.models (KAFKA_POOLS): [{pool, models, adapters?}], one per pool. */}}
{{- define "kafka-llm.poolDeclarations" -}}
{{- $out := list -}}
{{- range $pool := (include "kafka-llm.pools" . | fromJson).pools -}}
{{- $models := list $pool.modelName -}}
{{- $adapters := dict -}}
{{- range $a := $pool.adapters -}}
{{- $models = append $models $a.name -}}
{{- $_ := set $adapters $a.name $pool.modelName -}}
{{- end -}}
{{- $d := dict "pool" $pool.name "models" $models -}}
{{- if $adapters }}{{- $_ := set $d "adapters" $adapters -}}{{- end -}}
{{- $out = append $out $d -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* A pool's MODEL (the worker's and the init container's): the URI, or the file in the claim. */}}
{{- define "kafka-llm.poolModel" -}}
{{- if eq .model.source "pvc" -}}
{{- printf "/models/%s" (trimPrefix "/" .model.pvc.file) -}}
{{- else -}}
{{- .model.uri -}}
{{- end -}}
{{- end -}}

{{/* A pool's MODEL_ADAPTERS: name=URI (fetched into /models beside the model) or name=/models/<file in the claim>, comma-separated. */}}
{{- define "kafka-llm.poolAdapters" -}}
{{- $out := list -}}
{{- range $a := .adapters -}}
{{- $out = append $out (printf "%s=%s" $a.name (ternary $a.uri (printf "/models/%s" (trimPrefix "/" $a.uri)) (regexMatch "^(hf:|https?://)" $a.uri))) -}}
{{- end -}}
{{- join "," $out -}}
{{- end -}}
