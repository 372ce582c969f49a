/**
 * Certificates for a local broker's TLS listener, made with openssl in a directory of the
 * caller's: a CA, and a broker certificate for 127.0.0.1 and localhost signed by it, valid
 * two days. Kafka reads the PEM keystore (the private key, then the certificate); clients
 * trust the CA (KAFKA_TLS_CA_FILE).
 */
import { execFile } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import type { BrokerTls } from "./security.js";

const run = promisify(execFile);

export async function makeBrokerCertificates(dir: string): Promise<BrokerTls> {
  const file = (name: string) => path.join(dir, name);
  const openssl = (...args: string[]) => run("openssl", args, { cwd: dir });
  await openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=kafka-llm local CA");
  await openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key", "-out", "broker.csr", "-subj", "/CN=127.0.0.1");
  await writeFile(file("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  await openssl(
    "x509",
    "-req",
    "-in",
    "broker.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "broker.pem",
    "-days",
    "2",
    "-extfile",
    "san.ext",
  );
  const keystore = file("broker-keystore.pem");
  await writeFile(keystore, (await readFile(file("broker.key"), "utf8")) + (await readFile(file("broker.pem"), "utf8")), { mode: 0o600 });
  return { ca: file("ca.pem"), keystore };
}
