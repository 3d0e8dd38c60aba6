package com.ggcore.runtime;

/**
 * The bridge to the worker. The plugin registers the native methods below (JNI RegisterNatives); nothing
 * calls them except {@link Native}, the default {@link #api}, so tests can install a fake {@link HostApi}
 * in a plain JVM where the natives do not exist.
 */
public final class Host {
    /** The services in use; tests replace it. */
    public static volatile HostApi api = new Native();

    private Host() {
    }

    static native void publish(String topic, byte[] payload, String queueFullPolicy);

    static native Object[] invoke(String functionArn, String qualifier, boolean event, String clientContextBase64,
            byte[] payload);

    static native byte[] shadow(String operation, String thing, byte[] payload);

    static native byte[] secret(byte[] requestJson);

    static native void log(int level, String line);

    /** The native calls, as a {@link HostApi}. */
    public static final class Native implements HostApi {
        @Override
        public void publish(String topic, byte[] payload, String queueFullPolicy) {
            Host.publish(topic, payload, queueFullPolicy);
        }

        @Override
        public Object[] invoke(String functionArn, String qualifier, boolean event, String clientContextBase64,
                byte[] payload) {
            return Host.invoke(functionArn, qualifier, event, clientContextBase64, payload);
        }

        @Override
        public byte[] shadow(String operation, String thing, byte[] payload) {
            return Host.shadow(operation, thing, payload);
        }

        @Override
        public byte[] secret(byte[] requestJson) {
            return Host.secret(requestJson);
        }

        @Override
        public void log(int level, String line) {
            Host.log(level, line);
        }
    }
}
