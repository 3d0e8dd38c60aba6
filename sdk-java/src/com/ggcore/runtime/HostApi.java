package com.ggcore.runtime;

/**
 * The core's services as the function sees them. {@link Host#api} holds the one in use: the native
 * calls into the worker by default, a fake in tests. Every method may throw {@link HostException}.
 */
public interface HostApi {
    /** {@code queueFullPolicy} is "", "BestEffort" or "AllOrError". */
    void publish(String topic, byte[] payload, String queueFullPolicy);

    /**
     * Invokes another function; returns {@code {String invocationId, String functionError ("" | "Handled" |
     * "Unhandled"), byte[] payload}}.
     */
    Object[] invoke(String functionArn, String qualifier, boolean event, String clientContextBase64, byte[] payload);

    /** {@code operation} is "get", "update" or "delete"; returns the shadow service's response document. */
    byte[] shadow(String operation, String thing, byte[] payload);

    /** {@code requestJson} is {@code {"SecretId":..,"VersionId":..,"VersionStage":..}}; returns the response document. */
    byte[] secret(byte[] requestJson);

    /** {@code level} 0 DEBUG, 1 INFO, 2 WARN, 3 ERROR, 4 FATAL. */
    void log(int level, String line);
}
