/**
 * The one client of the provider. Only the rate-gateway role constructs it, so
 * the API key lives in one process. Provider errors are mapped to Clawfleet's:
 * a 429 becomes retryable backpressure carrying `retryAfter`, overload and
 * server errors become retryable `ProviderError`s, a refused request a
 * non-retryable `ProviderRequestError`.
 *
 * The SDK's own OpenTelemetry span is turned off: the gateway's `chat {model}`
 * span is the one span per LLM call, with task and prompt attributes on it.
 */
import type Anthropic from "@anthropic-ai/sdk";
import type * as AnthropicSdk from "@anthropic-ai/sdk";
import { ModelBehaviorError, ProviderError, ProviderRequestError, RateLimitedError } from "../errors";
import { ContentBlockSchema, type ContentBlock } from "../contracts";
import type { CompleteRequest, CompleteResponse } from "../contracts";
import { httpFetch } from "./httpFetch";
import { streamMessage, textDeltas, type DeltaPublisher } from "./streaming";

export interface GatewayOptions {
  apiKey: string;
  baseURL: string | undefined;
  /** Per-request timeout. @default 120000 */
  timeoutMs?: number;
  /** SDK retries for connection errors and 5xx; 429s are never retried here (they are backpressure). @default 2 */
  maxRetries?: number;
}

export interface RateLimitHeaders {
  retryAfterS: number | undefined;
  /** `retry-after-ms`, when sent: sub-second precision for the rate limiter's penalty. */
  retryAfterMs: number | undefined;
  requestsRemaining: number | undefined;
  inputTokensRemaining: number | undefined;
  outputTokensRemaining: number | undefined;
  requestsLimit: number | undefined;
  inputTokensLimit: number | undefined;
  outputTokensLimit: number | undefined;
}

export interface ProviderResponse extends CompleteResponse {
  rateLimit: RateLimitHeaders;
}

function num(h: Headers | undefined, name: string): number | undefined {
  const v = h?.get(name);
  if (v === null || v === undefined || v === "") return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

export function readRateLimitHeaders(h: Headers | undefined): RateLimitHeaders {
  return {
    retryAfterS: num(h, "retry-after"),
    retryAfterMs: num(h, "retry-after-ms"),
    requestsRemaining: num(h, "anthropic-ratelimit-requests-remaining"),
    inputTokensRemaining: num(h, "anthropic-ratelimit-input-tokens-remaining"),
    outputTokensRemaining: num(h, "anthropic-ratelimit-output-tokens-remaining"),
    requestsLimit: num(h, "anthropic-ratelimit-requests-limit"),
    inputTokensLimit: num(h, "anthropic-ratelimit-input-tokens-limit"),
    outputTokensLimit: num(h, "anthropic-ratelimit-output-tokens-limit"),
  };
}

/**
 * The SDK, loaded by the first gateway made: only the rate-gateway role makes one, and the other roles'
 * processes (which import this module with the rest of the node) never load it, which saves each of them
 * start-up time and memory. `require`, not `import()`: Clawfleet's package is CommonJS, and it resolves the
 * same from the sources and from dist/ (app/cli.ts).
 */
let loaded: typeof AnthropicSdk | undefined;
function sdk(): typeof AnthropicSdk {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (loaded ??= require("@anthropic-ai/sdk") as typeof AnthropicSdk);
}

export class AnthropicGateway {
  private readonly client: Anthropic;

  constructor(opts: GatewayOptions) {
    this.client = new (sdk().default)({
      apiKey: opts.apiKey,
      baseURL: opts.baseURL ?? null,
      timeout: opts.timeoutMs ?? 120_000,
      maxRetries: 0,
      openTelemetry: false,
      // node:http with keep-alive rather than undici's fetch: half the CPU per call (httpFetch.ts).
      fetch: httpFetch,
    });
    this.maxRetries = opts.maxRetries ?? 2;
  }

  private readonly maxRetries: number;

  /**
   * `signal`: aborts the provider request in flight (the caller gave up); the call then rejects with the signal's reason.
   * `publish`: where the text deltas of a streamed call (`req.stream`) go; the answer is the same either way.
   */
  async complete(req: CompleteRequest, signal?: AbortSignal, publish?: DeltaPublisher): Promise<ProviderResponse> {
    const started = performance.now();
    const params: Anthropic.MessageCreateParamsNonStreaming = {
      model: req.model,
      max_tokens: req.maxTokens,
      system: req.system,
      messages: req.messages,
      ...(req.tools.length > 0 ? { tools: req.tools as Anthropic.Tool[] } : {}),
      metadata: { user_id: req.taskId },
    };
    for (let attempt = 0; ; attempt++) {
      try {
        const { data, response } = req.stream
          ? await streamMessage(this.client, params, signal, publish ? textDeltas(req, req.stream.tenant, publish) : () => undefined)
          : await this.client.messages.create(params, signal ? { signal } : undefined).withResponse();
        return {
          id: data.id,
          model: data.model,
          content: data.content.map(toBlock),
          stop_reason: data.stop_reason,
          usage: {
            input_tokens: data.usage.input_tokens,
            output_tokens: data.usage.output_tokens,
            cache_read_input_tokens: data.usage.cache_read_input_tokens ?? 0,
            cache_creation_input_tokens: data.usage.cache_creation_input_tokens ?? 0,
          },
          duration_ms: Math.round(performance.now() - started),
          rateLimit: readRateLimitHeaders(response.headers),
        };
      } catch (err) {
        // The provider answered, and the answer is malformed: a fact about this answer, not a passing failure.
        if (err instanceof ModelBehaviorError) throw err;
        // Not a provider failure, and never retried: whoever aborted has stopped waiting for the answer.
        if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason));
        const mapped = mapProviderError(err);
        if (mapped instanceof ProviderError && attempt < this.maxRetries) {
          await new Promise((r) => setTimeout(r, 200 * 2 ** attempt + Math.random() * 100));
          continue;
        }
        throw mapped;
      }
    }
  }

  /** Connectivity check for readiness: a count_tokens round trip (cheap, no generation). */
  async ping(model: string): Promise<void> {
    try {
      await this.client.messages.countTokens({ model, messages: [{ role: "user", content: "ping" }] });
    } catch (err) {
      throw mapProviderError(err);
    }
  }
}

/**
 * A content block as Clawfleet stores and replays it. A block the Messages API would never send (a tool_use
 * without an id or a name, a text block without text) is the model's answer being malformed: a typed
 * `model_behavior_error` naming the block, rather than a contract failure deep in the checkpoint write.
 */
function toBlock(b: Anthropic.ContentBlock, index: number): ContentBlock {
  // Discriminated by its type: the error names the block's missing field, not "matches no variant".
  const checked = ContentBlockSchema.safeParse(rawBlock(b));
  if (!checked.success) {
    const issue = checked.error.issues[0];
    const field = issue?.path.length ? `.${issue.path.join(".")}` : "";
    throw new ModelBehaviorError(`the model's answer holds a malformed ${String(b.type)} block: content[${index}]${field} ${issue?.message ?? "is invalid"}`);
  }
  return checked.data;
}

function rawBlock(b: Anthropic.ContentBlock): unknown {
  switch (b.type) {
    case "text":
      return { type: "text", text: b.text };
    case "tool_use":
      return { type: "tool_use", id: b.id, name: b.name, input: b.input };
    case "thinking":
      return { type: "thinking", thinking: b.thinking, signature: b.signature };
    case "redacted_thinking":
      return { type: "redacted_thinking", data: b.data };
    default:
      return { type: "text", text: "" };
  }
}

export function mapProviderError(err: unknown): Error {
  if (err instanceof sdk().APIError) {
    const apiErr: { status: number | undefined; headers: Headers | undefined; requestID?: string | null | undefined; message: string } = err as {
      status: number | undefined;
      headers: Headers | undefined;
      requestID?: string | null;
      message: string;
    };
    const status = apiErr.status;
    const rl = readRateLimitHeaders(apiErr.headers);
    const details = { status, requestId: apiErr.requestID ?? undefined };
    if (status === 429) {
      return new RateLimitedError("the provider's rate limit is exhausted", {
        ...details,
        retryAfter: rl.retryAfterMs !== undefined ? rl.retryAfterMs / 1000 : (rl.retryAfterS ?? 1),
        ...(rl.retryAfterMs !== undefined ? { retryAfterMs: rl.retryAfterMs } : {}),
        source: "provider",
      });
    }
    if (status === undefined || status >= 500 || status === 408 || status === 409) {
      return new ProviderError(`provider error ${status ?? "(connection)"}: ${err.message}`, details);
    }
    return new ProviderRequestError(`provider refused the request (${status}): ${err.message}`, details);
  }
  if (err instanceof Error) return new ProviderError(`provider unreachable: ${err.message}`);
  return new ProviderError(String(err));
}
