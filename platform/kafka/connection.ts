/**
 * librdkafka properties every client of the project shares: the brokers, TLS and SASL of
 * KafkaConfig, and reconnection that is back within seconds of a broker restart.
 */
import type { KafkaConfig } from "../../contracts/config/shared.js";

export type LibrdkafkaProps = Record<string, string | number | boolean>;

/** The connection properties of a client for `config` (client.id: KAFKA_CLIENT_ID, or `clientId`). */
export function librdkafkaConnection(config: KafkaConfig, clientId = config.clientId): LibrdkafkaProps {
  const props: LibrdkafkaProps = {
    "bootstrap.servers": config.brokers.join(","),
    "client.id": clientId,
    "socket.keepalive.enable": true,
    // Nagle's algorithm holds small requests back behind an unacknowledged one: on a chat
    // bus every request is small and waited for.
    "socket.nagle.disable": true,
    // Back-off capped at 5 s: back within seconds of a broker restart.
    "reconnect.backoff.ms": 200,
    "reconnect.backoff.max.ms": 5000,
    "log.connection.close": false,
  };
  const tls = config.tls;
  const sasl = config.sasl;
  props["security.protocol"] = `${sasl ? "sasl_" : ""}${tls ? "ssl" : "plaintext"}`;
  if (sasl) {
    props["sasl.mechanisms"] = sasl.mechanism.toUpperCase();
    props["sasl.username"] = sasl.username;
    props["sasl.password"] = sasl.password;
  }
  if (tls) {
    if (tls.ca) props["ssl.ca.pem"] = tls.ca;
    if (tls.cert) props["ssl.certificate.pem"] = tls.cert;
    if (tls.key) props["ssl.key.pem"] = tls.key;
    props["enable.ssl.certificate.verification"] = tls.rejectUnauthorized;
    if (!tls.rejectUnauthorized) props["ssl.endpoint.identification.algorithm"] = "none";
  }
  return props;
}

/**
 * librdkafka's syslog levels to pino's. Its errors (3) are mostly a broker away ("Connect
 * ... failed"), which it retries by itself: warnings here; what a caller must act on reaches
 * it as an error of the call.
 */
export const SEVERITY: Readonly<Record<number, "error" | "warn" | "info" | "debug">> = {
  0: "error",
  1: "error",
  2: "error",
  3: "warn",
  4: "warn",
  5: "debug",
  6: "debug",
  7: "debug",
};
