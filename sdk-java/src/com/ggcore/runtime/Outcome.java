package com.ggcore.runtime;

/** The result of one invocation, read by the plugin through JNI field access. */
public final class Outcome {
    /** True when the handler (or binding its input/output) failed; {@link #payload} is then the error document. */
    public final boolean failed;
    /** The result bytes, or the UTF-8 JSON error document when {@link #failed}. Never null. */
    public final byte[] payload;

    public Outcome(boolean failed, byte[] payload) {
        this.failed = failed;
        this.payload = payload == null ? new byte[0] : payload;
    }
}
