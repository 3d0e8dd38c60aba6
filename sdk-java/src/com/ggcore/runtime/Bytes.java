package com.ggcore.runtime;

import java.nio.ByteBuffer;

/** Byte helpers shared by the runtime and the SDK. */
public final class Bytes {
    private Bytes() {
    }

    /**
     * The bytes of a buffer, without moving its position: those between position and limit. A buffer that
     * was filled with {@code put} and not flipped (nothing remaining, position past zero) gives the bytes it
     * was filled with, since the published SDK sent a buffer's whole backing array and handlers relied on it.
     */
    public static byte[] of(ByteBuffer buffer) {
        if (buffer == null) {
            return new byte[0];
        }
        ByteBuffer b = buffer.duplicate();
        if (!b.hasRemaining() && b.position() > 0) {
            b.flip();
        }
        byte[] out = new byte[b.remaining()];
        b.get(out);
        return out;
    }
}
