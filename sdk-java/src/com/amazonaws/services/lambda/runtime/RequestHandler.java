package com.amazonaws.services.lambda.runtime;

/**
 * A handler whose event is bound to {@code I} and whose result {@code O} is returned to the caller.
 * See ggcore's docs for how events and results are converted.
 */
public interface RequestHandler<I, O> {
    O handleRequest(I input, Context context);
}
