package com.ggcore.runtime;

import com.amazonaws.services.lambda.runtime.Client;
import com.amazonaws.services.lambda.runtime.ClientContext;
import com.amazonaws.services.lambda.runtime.CognitoIdentity;
import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.LambdaLogger;

import java.nio.charset.StandardCharsets;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/** The {@link Context} of one invocation. */
public final class LambdaContext implements Context {
    private final String requestId;
    private final String functionArn;
    private final String functionName;
    private final String functionVersion;
    private final int memoryLimitMb;
    private final long deadlineUnixMs;
    private final long timeoutMs;
    private final ClientContext clientContext;

    public LambdaContext(String functionArn, int memoryLimitMb, long timeoutMs, String requestId,
            String clientContextJson, long deadlineUnixMs) {
        this.functionArn = functionArn == null ? "" : functionArn;
        String[] parts = this.functionArn.split(":", -1);
        // arn:aws:lambda:REGION:ACCOUNT:function:NAME[:VERSION]
        this.functionName = parts.length > 6 ? parts[6] : this.functionArn;
        this.functionVersion = parts.length > 7 && !parts[7].isEmpty() ? parts[7] : "$LATEST";
        this.memoryLimitMb = memoryLimitMb;
        this.timeoutMs = timeoutMs;
        this.requestId = requestId == null ? "" : requestId;
        this.deadlineUnixMs = deadlineUnixMs;
        this.clientContext = parseClientContext(clientContextJson);
    }

    @Override
    public String getAwsRequestId() {
        return requestId;
    }

    @Override
    public String getLogGroupName() {
        // As the Python runtime names it: /aws/greengrass/Lambda/REGION/ACCOUNT/NAME.
        String[] parts = functionArn.split(":", -1);
        if (parts.length > 6) {
            return "/aws/greengrass/Lambda/" + parts[3] + "/" + parts[4] + "/" + functionName;
        }
        return "/aws/greengrass/Lambda/" + functionName;
    }

    @Override
    public String getLogStreamName() {
        return "ggcore";
    }

    @Override
    public String getFunctionName() {
        return functionName;
    }

    @Override
    public String getFunctionVersion() {
        return functionVersion;
    }

    @Override
    public String getInvokedFunctionArn() {
        return functionArn;
    }

    @Override
    public CognitoIdentity getIdentity() {
        return NO_IDENTITY;
    }

    @Override
    public ClientContext getClientContext() {
        return clientContext;
    }

    @Override
    public int getRemainingTimeInMillis() {
        long left;
        if (deadlineUnixMs > 0) {
            left = deadlineUnixMs - System.currentTimeMillis();
        } else {
            left = timeoutMs > 0 ? timeoutMs : Integer.MAX_VALUE;
        }
        return (int) Math.max(0, Math.min(Integer.MAX_VALUE, left));
    }

    @Override
    public int getMemoryLimitInMB() {
        return memoryLimitMb;
    }

    @Override
    public LambdaLogger getLogger() {
        return LOGGER;
    }

    /** Lines go to the function's log at INFO. */
    static final LambdaLogger LOGGER = new LambdaLogger() {
        @Override
        public void log(String message) {
            Runtime.log(1, String.valueOf(message));
        }

        @Override
        public void log(byte[] message) {
            log(message == null ? "null" : new String(message, StandardCharsets.UTF_8));
        }
    };

    private static final CognitoIdentity NO_IDENTITY = new CognitoIdentity() {
        @Override
        public String getIdentityId() {
            return null;
        }

        @Override
        public String getIdentityPoolId() {
            return null;
        }
    };

    /**
     * {@code {"custom":{...},"client":{...},"env":{...}}}; null for no client context, empty maps for one that
     * is not a JSON object. Non-string values become their JSON text.
     */
    static ClientContext parseClientContext(String json) {
        if (json == null || json.trim().isEmpty()) {
            return null;
        }
        Map<?, ?> doc;
        try {
            Object parsed = Json.parse(json);
            doc = parsed instanceof Map ? (Map<?, ?>) parsed : Collections.emptyMap();
        } catch (IllegalArgumentException e) {
            doc = Collections.emptyMap();
        }
        Object custom = doc.containsKey("custom") ? doc.get("custom") : doc.get("Custom");
        final Map<String, String> customMap = strings(custom);
        Object env = doc.containsKey("env") ? doc.get("env") : doc.get("environment");
        final Map<String, String> envMap = strings(env);
        Object clientDoc = doc.get("client");
        final Client client = clientDoc instanceof Map ? new ClientInfo(strings(clientDoc)) : null;
        return new ClientContext() {
            @Override
            public Client getClient() {
                return client;
            }

            @Override
            public Map<String, String> getCustom() {
                return customMap;
            }

            @Override
            public Map<String, String> getEnvironment() {
                return envMap;
            }
        };
    }

    private static Map<String, String> strings(Object value) {
        Map<String, String> out = new LinkedHashMap<String, String>();
        if (value instanceof Map) {
            for (Map.Entry<?, ?> e : ((Map<?, ?>) value).entrySet()) {
                Object v = e.getValue();
                out.put(String.valueOf(e.getKey()), v == null ? null : v instanceof String ? (String) v : Json.write(v));
            }
        }
        return Collections.unmodifiableMap(out);
    }

    /** A client context's {@code client}, read with AWS's snake_case keys or camelCase ones. */
    private static final class ClientInfo implements Client {
        private final Map<String, String> doc;

        ClientInfo(Map<String, String> doc) {
            this.doc = doc;
        }

        private String get(String snake, String camel) {
            return doc.containsKey(snake) ? doc.get(snake) : doc.get(camel);
        }

        @Override
        public String getInstallationId() {
            return get("installation_id", "installationId");
        }

        @Override
        public String getAppTitle() {
            return get("app_title", "appTitle");
        }

        @Override
        public String getAppVersionName() {
            return get("app_version_name", "appVersionName");
        }

        @Override
        public String getAppVersionCode() {
            return get("app_version_code", "appVersionCode");
        }

        @Override
        public String getAppPackageName() {
            return get("app_package_name", "appPackageName");
        }
    }
}
