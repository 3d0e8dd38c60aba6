package example;

import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestHandler;

public class StaticInitFails implements RequestHandler<String, String> {
    static {
        if (Boolean.TRUE) {
            throw new IllegalStateException("static boom");
        }
    }

    @Override
    public String handleRequest(String input, Context context) {
        return input;
    }
}
