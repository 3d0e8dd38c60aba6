package com.amazonaws.greengrass.javasdk;

import com.amazonaws.greengrass.javasdk.model.GGSecretsManagerException;
import com.amazonaws.greengrass.javasdk.model.GetSecretValueRequest;
import com.amazonaws.greengrass.javasdk.model.GetSecretValueResult;
import com.amazonaws.greengrass.javasdk.model.InvalidSecretsManagerRequestException;
import com.amazonaws.greengrass.javasdk.model.SecretResourceNotFoundException;
import com.amazonaws.greengrass.javasdk.model.UnauthorizedSecretsManagerRequestException;
import com.ggcore.runtime.Host;
import com.ggcore.runtime.HostException;
import com.ggcore.runtime.Json;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Date;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Reads the group's secret resources from the core. */
public class SecretsManagerClient extends GGClient {
    public SecretsManagerClient() {
    }

    /** Kept for source compatibility with the published SDK; the Lambda client is not needed. */
    public SecretsManagerClient(LambdaClient lambdaClient) {
    }

    public GetSecretValueResult getSecretValue(GetSecretValueRequest request) throws GGSecretsManagerException {
        if (request == null) {
            throw new InvalidSecretsManagerRequestException("Request is a required parameter");
        }
        if (request.getSecretId() == null || request.getSecretId().isEmpty()) {
            throw new InvalidSecretsManagerRequestException("SecretId is a required parameter");
        }
        Map<String, Object> query = new LinkedHashMap<String, Object>();
        query.put("SecretId", request.getSecretId());
        if (request.getVersionId() != null && !request.getVersionId().isEmpty()) {
            query.put("VersionId", request.getVersionId());
        }
        if (request.getVersionStage() != null && !request.getVersionStage().isEmpty()) {
            query.put("VersionStage", request.getVersionStage());
        }
        byte[] response;
        try {
            response = Host.api.secret(Json.writeBytes(query));
        } catch (HostException e) {
            throw translate(e);
        }
        Object parsed;
        try {
            parsed = Json.parse(response == null ? new byte[0] : response);
        } catch (IllegalArgumentException e) {
            throw new GGSecretsManagerException("the secrets service's response is not JSON: " + e.getMessage());
        }
        if (!(parsed instanceof Map)) {
            throw new GGSecretsManagerException("the secrets service's response is not a JSON object");
        }
        Map<?, ?> doc = (Map<?, ?>) parsed;
        if (doc.containsKey("Status") && doc.containsKey("Message")) {
            throw error(doc.get("Status"), String.valueOf(doc.get("Message")));
        }
        GetSecretValueResult result = new GetSecretValueResult();
        result.setARN(string(doc.get("ARN")));
        result.setName(string(doc.get("Name")));
        result.setVersionId(string(doc.get("VersionId")));
        result.setSecretString(string(doc.get("SecretString")));
        Object binary = doc.get("SecretBinary");
        if (binary instanceof String) {
            byte[] bytes;
            try {
                bytes = Base64.getDecoder().decode((String) binary);
            } catch (IllegalArgumentException e) {
                bytes = ((String) binary).getBytes(StandardCharsets.UTF_8);
            }
            result.setSecretBinary(ByteBuffer.wrap(bytes));
        }
        Object stages = doc.get("VersionStages");
        if (stages instanceof List) {
            List<String> list = new ArrayList<String>();
            for (Object s : (List<?>) stages) {
                list.add(string(s));
            }
            result.setVersionStages(list);
        }
        Object created = doc.get("CreatedDate");
        if (created instanceof Number) {
            // Epoch milliseconds, as the core's secrets service sends it.
            result.setCreatedDate(new Date(((Number) created).longValue()));
        }
        return result;
    }

    private static String string(Object v) {
        return v == null ? null : v instanceof String ? (String) v : Json.write(v);
    }

    private static GGSecretsManagerException translate(HostException e) {
        String code = e.getCode();
        if (e.isInvalidRequest()) {
            return new InvalidSecretsManagerRequestException(e.describe(), e);
        }
        if ("NotFound".equals(code)) {
            return new SecretResourceNotFoundException(e.describe(), e);
        }
        if ("Refused".equals(code)) {
            return new UnauthorizedSecretsManagerRequestException(e.describe(), e);
        }
        return new GGSecretsManagerException(e.describe(), e);
    }

    private static GGSecretsManagerException error(Object status, String message) {
        String text = "Request for secret value returned error code " + string(status) + " with message " + message;
        int code = status instanceof Number ? ((Number) status).intValue() : -1;
        switch (code) {
            case 400:
                return new InvalidSecretsManagerRequestException(text);
            case 403:
                return new UnauthorizedSecretsManagerRequestException(text);
            case 404:
                return new SecretResourceNotFoundException(text);
            default:
                return new GGSecretsManagerException(text);
        }
    }
}
