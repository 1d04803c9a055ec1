/**
 * Tools that live in the cluster's services. A service with the `ClawfleetTools`
 * mixin publishes its tools in its registry metadata (`metadata.clawfleet`, the
 * shape is in src/contracts/tools.ts), so this source finds them wherever they
 * run: any node, any number of replicas, in this process or another. A call goes
 * through `broker.call` with the tool's action name, so Moleculer balances it
 * over the replicas and its circuit breaker applies, and carries the idempotency
 * key and the task id in `ctx.meta`, and the tool's timeout.
 *
 * The index is built from the registry's list of available services and rebuilt,
 * on the next look-up, after every `$services.changed` (a node joined or left, a
 * service started or stopped).
 */
import type { ServiceBroker } from "moleculer";
import type { AgentDefinition } from "../../agent/definition";
import { ToolServiceMetadataSchema, type ServiceTool } from "../../contracts";
import { messageOf } from "../../errors";
import type { Logger } from "../../logging";
import { compileInputSchema } from "../inputSchema";
import { DEFAULT_TIMEOUT_MS } from "../registry";
import type { ResolvedTool, ToolSource } from "../source";

/** What a tool action finds in `ctx.meta`. */
export interface ToolCallMeta {
  /** `${taskId}:${step}`: the same on every execution of the step; a side-effect tool dedupes on it. */
  idempotencyKey: string;
  taskId: string;
  step: number;
  agent: string;
}

/** A service as the registry lists it (`getServiceList({ onlyAvailable: true, withActions: true })`): one entry per node. */
export interface RegisteredService {
  name: string;
  fullName: string;
  nodeID: string;
  metadata?: unknown;
  actions?: Record<string, unknown>;
}

/** What the source needs of a broker; `brokerDirectory` is the real one. */
export interface ServiceDirectory {
  services(): readonly RegisteredService[];
  call(action: string, params: unknown, opts: { meta: ToolCallMeta; timeout: number }): Promise<unknown>;
  /** Calls `listener` whenever the cluster's services change; returns the unsubscribe. */
  onChange(listener: () => void): () => void;
}

export function brokerDirectory(broker: ServiceBroker): ServiceDirectory {
  return {
    services: () => broker.registry.getServiceList({ onlyAvailable: true, withActions: true }) as unknown as RegisteredService[],
    call: (action, params, opts) => broker.call(action, params as Record<string, unknown>, opts),
    onChange: (listener) => {
      broker.localBus.on("$services.changed", listener);
      return () => {
        broker.localBus.off("$services.changed", listener);
      };
    },
  };
}

interface Entry {
  tool: ResolvedTool;
  /** The service's full name: replicas share it. */
  service: string;
  nodes: Set<string>;
}

export class ServiceToolSource implements ToolSource {
  readonly kind = "service" as const;
  private index: Map<string, Entry> | undefined;
  private readonly unsubscribe: () => void;
  /** Problems already reported, so a misdeclared service is named once, not on every rebuild. */
  private readonly reported = new Set<string>();

  constructor(
    private readonly directory: ServiceDirectory,
    private readonly logger: Pick<Logger, "warn">,
  ) {
    this.unsubscribe = directory.onChange(() => {
      this.index = undefined;
    });
  }

  async resolve(_agent: AgentDefinition, name: string): Promise<ResolvedTool | undefined> {
    return this.current().get(name)?.tool;
  }

  async list(_agent: AgentDefinition): Promise<ResolvedTool[]> {
    return [...this.current().values()].map((e) => e.tool);
  }

  /** Nodes offering each tool now, for logs and tests. */
  nodesOf(name: string): string[] {
    return [...(this.current().get(name)?.nodes ?? [])].sort();
  }

  async close(): Promise<void> {
    this.unsubscribe();
  }

  private current(): Map<string, Entry> {
    return (this.index ??= this.build());
  }

  private build(): Map<string, Entry> {
    const index = new Map<string, Entry>();
    // Sorted, so every executor picks the same service when two declare one tool name.
    const services = [...this.directory.services()].sort((a, b) => a.fullName.localeCompare(b.fullName) || a.nodeID.localeCompare(b.nodeID));
    for (const svc of services) {
      const raw = (svc.metadata as { clawfleet?: unknown } | null | undefined)?.clawfleet;
      if (raw === undefined) continue;
      const parsed = ToolServiceMetadataSchema.safeParse(raw);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        this.reportOnce(`${svc.fullName}@${svc.nodeID}`, svc, `its metadata.clawfleet is not understood (${issue?.path.join(".") ?? ""}: ${issue?.message ?? "invalid"}); its tools are left out`);
        continue;
      }
      for (const t of parsed.data.tools) this.add(index, svc, t);
    }
    return index;
  }

  private add(index: Map<string, Entry>, svc: RegisteredService, t: ServiceTool): void {
    if (svc.actions && !Object.hasOwn(svc.actions, t.action)) {
      this.reportOnce(`${svc.fullName}@${svc.nodeID}:${t.name}`, svc, `tool ${t.name} names action ${t.action}, which the service does not have; left out`);
      return;
    }
    const existing = index.get(t.name);
    if (existing?.service === svc.fullName) {
      existing.nodes.add(svc.nodeID);
      return;
    }
    if (existing) {
      this.reportOnce(`conflict:${t.name}:${svc.fullName}`, svc, `tool ${t.name} is declared by ${existing.service} too; ${existing.service} serves it`);
      return;
    }
    try {
      compileInputSchema(t.inputSchema);
    } catch (err) {
      this.reportOnce(`${svc.fullName}@${svc.nodeID}:${t.name}:schema`, svc, `tool ${t.name} has an unusable input schema (${messageOf(err)}); left out`);
      return;
    }
    index.set(t.name, { tool: this.toResolved(t), service: svc.fullName, nodes: new Set([svc.nodeID]) });
  }

  private toResolved(t: ServiceTool): ResolvedTool {
    const { directory } = this;
    return {
      name: t.name,
      description: t.description,
      inputSchema: t.inputSchema,
      sideEffect: t.sideEffect,
      ...(t.timeoutMs !== undefined ? { timeoutMs: t.timeoutMs } : {}),
      target: t.action,
      invoke: (input, ctx) =>
        directory.call(t.action, input, {
          meta: { idempotencyKey: ctx.idempotencyKey, taskId: ctx.taskId, step: ctx.step, agent: ctx.agent },
          timeout: ctx.timeoutMs ?? t.timeoutMs ?? DEFAULT_TIMEOUT_MS,
        }),
    };
  }

  private reportOnce(key: string, svc: RegisteredService, problem: string): void {
    if (this.reported.has(key)) return;
    this.reported.add(key);
    this.logger.warn({ event: "tools.service_misdeclared", service: svc.fullName, nodeID: svc.nodeID }, `tool service ${svc.fullName} on ${svc.nodeID}: ${problem}`);
  }
}
