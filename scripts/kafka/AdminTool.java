/*
 * The Kafka calls librdkafka's Node binding does not offer (confluentinc/confluent-kafka-javascript#444):
 * creating and describing ACLs, and describing topic configs, made with Kafka's own Java AdminClient
 * from the broker's jars. scripts/kafka/admin-tool.ts compiles it once into .cache and runs it.
 *
 *   java -cp <cache dir>:<kafka lib>/* AdminTool create-acls|describe-acls|describe-configs < request.json
 *
 * The request (JSON on stdin):
 *   bootstrap   "host:port,..."
 *   sasl        {mechanism, username, password} or null
 *   tls         {ca, cert, key (PEM strings, each optional), verifyHostname} or null
 *   bindings    create-acls: [{resourceType, resourceName, patternType, principal, host, operation, permission}]
 *               (Kafka's enum names: TOPIC, LITERAL, DESCRIBE_CONFIGS, ALLOW)
 *   filter      describe-acls: {principal?, host?} (absent: any)
 *   resources   describe-configs: [{type: "TOPIC", name, configs?: [names]}]
 *
 * The answer is one line of JSON on stdout: {created: n}, {bindings: [...]} or
 * {resources: [{type, name, configs: {name: value}}]}; a failure is {error: {name, message}}
 * and exit code 1. Anything the client logs goes to stderr.
 */
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.DescribeConfigsOptions;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AccessControlEntryFilter;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclBindingFilter;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourcePatternFilter;
import org.apache.kafka.common.resource.ResourceType;

public final class AdminTool {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final int TIMEOUT_MS = 30_000;

  public static void main(String[] args) throws Exception {
    // The answer alone on stdout: whatever the client logs goes to stderr.
    PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
    System.setOut(System.err);
    int code = 0;
    ObjectNode answer;
    try {
      if (args.length != 1) throw new IllegalArgumentException("usage: AdminTool create-acls|describe-acls|describe-configs < request.json");
      JsonNode request = JSON.readTree(System.in);
      if (request == null || !request.isObject()) throw new IllegalArgumentException("the request on stdin is not a JSON object");
      try (Admin admin = Admin.create(clientProperties(request))) {
        answer = switch (args[0]) {
          case "create-acls" -> createAcls(admin, request.path("bindings"));
          case "describe-acls" -> describeAcls(admin, request.path("filter"));
          case "describe-configs" -> describeConfigs(admin, request.path("resources"));
          default -> throw new IllegalArgumentException("unknown command " + args[0]);
        };
      }
    } catch (Throwable err) {
      Throwable cause = err instanceof ExecutionException && err.getCause() != null ? err.getCause() : err;
      answer = JSON.createObjectNode();
      answer.putObject("error").put("name", cause.getClass().getSimpleName()).put("message", String.valueOf(cause.getMessage()));
      code = 1;
    }
    out.println(JSON.writeValueAsString(answer));
    out.flush();
    // The client's threads must not keep the JVM up.
    System.exit(code);
  }

  static Properties clientProperties(JsonNode request) {
    Properties p = new Properties();
    p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, required(request, "bootstrap").asText());
    p.put(AdminClientConfig.CLIENT_ID_CONFIG, request.path("clientId").asText("kafka-llm-admin-tool"));
    p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, String.valueOf(TIMEOUT_MS));
    p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
    p.put(AdminClientConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, "2000");
    JsonNode sasl = request.path("sasl");
    JsonNode tls = request.path("tls");
    boolean secured = sasl.isObject();
    boolean encrypted = tls.isObject();
    p.put(AdminClientConfig.SECURITY_PROTOCOL_CONFIG, (secured ? "SASL_" : "") + (encrypted ? "SSL" : "PLAINTEXT"));
    if (secured) {
      String mechanism = required(sasl, "mechanism").asText().toUpperCase();
      String module = mechanism.startsWith("SCRAM-") ? "org.apache.kafka.common.security.scram.ScramLoginModule" : "org.apache.kafka.common.security.plain.PlainLoginModule";
      p.put("sasl.mechanism", mechanism);
      p.put("sasl.jaas.config", module + " required username=" + jaasQuoted(required(sasl, "username").asText()) + " password=" + jaasQuoted(required(sasl, "password").asText()) + ";");
    }
    if (encrypted) {
      if (tls.hasNonNull("ca")) {
        p.put("ssl.truststore.type", "PEM");
        p.put("ssl.truststore.certificates", tls.get("ca").asText());
      }
      if (tls.hasNonNull("cert") && tls.hasNonNull("key")) {
        p.put("ssl.keystore.type", "PEM");
        p.put("ssl.keystore.certificate.chain", tls.get("cert").asText());
        p.put("ssl.keystore.key", tls.get("key").asText());
      }
      if (!tls.path("verifyHostname").asBoolean(true)) p.put("ssl.endpoint.identification.algorithm", "");
    }
    return p;
  }

  /** A JAAS option value in double quotes (a password may hold anything). */
  static String jaasQuoted(String value) {
    return "\"" + value.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
  }

  static JsonNode required(JsonNode node, String field) {
    JsonNode value = node.get(field);
    if (value == null || value.isNull()) throw new IllegalArgumentException("the request lacks " + field);
    return value;
  }

  static ObjectNode createAcls(Admin admin, JsonNode bindings) throws Exception {
    if (!bindings.isArray()) throw new IllegalArgumentException("create-acls needs bindings (an array)");
    List<AclBinding> acls = new ArrayList<>();
    for (JsonNode b : bindings) {
      acls.add(
          new AclBinding(
              new ResourcePattern(ResourceType.valueOf(required(b, "resourceType").asText()), required(b, "resourceName").asText(), PatternType.valueOf(required(b, "patternType").asText())),
              new AccessControlEntry(
                  required(b, "principal").asText(),
                  b.path("host").asText("*"),
                  AclOperation.valueOf(required(b, "operation").asText()),
                  AclPermissionType.valueOf(b.path("permission").asText("ALLOW")))));
    }
    admin.createAcls(acls).all().get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
    ObjectNode answer = JSON.createObjectNode();
    answer.put("created", acls.size());
    return answer;
  }

  static ObjectNode describeAcls(Admin admin, JsonNode filter) throws Exception {
    String principal = filter.hasNonNull("principal") ? filter.get("principal").asText() : null;
    String host = filter.hasNonNull("host") ? filter.get("host").asText() : null;
    AclBindingFilter any =
        new AclBindingFilter(new ResourcePatternFilter(ResourceType.ANY, null, PatternType.ANY), new AccessControlEntryFilter(principal, host, AclOperation.ANY, AclPermissionType.ANY));
    Collection<AclBinding> held = admin.describeAcls(any).values().get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
    ObjectNode answer = JSON.createObjectNode();
    ArrayNode list = answer.putArray("bindings");
    for (AclBinding b : held) {
      list.addObject()
          .put("resourceType", b.pattern().resourceType().name())
          .put("resourceName", b.pattern().name())
          .put("patternType", b.pattern().patternType().name())
          .put("principal", b.entry().principal())
          .put("host", b.entry().host())
          .put("operation", b.entry().operation().name())
          .put("permission", b.entry().permissionType().name());
    }
    return answer;
  }

  static ObjectNode describeConfigs(Admin admin, JsonNode resources) throws Exception {
    if (!resources.isArray()) throw new IllegalArgumentException("describe-configs needs resources (an array)");
    List<ConfigResource> asked = new ArrayList<>();
    List<Set<String>> names = new ArrayList<>();
    for (JsonNode r : resources) {
      asked.add(new ConfigResource(ConfigResource.Type.valueOf(r.path("type").asText("TOPIC")), required(r, "name").asText()));
      Set<String> wanted = null;
      if (r.path("configs").isArray()) {
        wanted = new HashSet<>();
        for (JsonNode n : r.get("configs")) wanted.add(n.asText());
      }
      names.add(wanted);
    }
    Map<ConfigResource, Config> described = admin.describeConfigs(asked, new DescribeConfigsOptions().includeSynonyms(false)).all().get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
    ObjectNode answer = JSON.createObjectNode();
    ArrayNode list = answer.putArray("resources");
    for (int i = 0; i < asked.size(); i++) {
      ConfigResource resource = asked.get(i);
      ObjectNode item = list.addObject().put("type", resource.type().name()).put("name", resource.name());
      ObjectNode configs = item.putObject("configs");
      Config config = described.get(resource);
      if (config == null) continue;
      for (ConfigEntry e : config.entries()) {
        if (names.get(i) == null || names.get(i).contains(e.name())) configs.put(e.name(), e.value());
      }
    }
    return answer;
  }
}
