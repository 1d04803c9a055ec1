/**
 * `checkpoint`: the only role with the task database. Every write that a worker
 * makes carries its fencing token; the store refuses stale ones.
 */
import type { Context, ServiceSchema } from "moleculer";
import type { z } from "zod";
import type { Resources } from "../src/runtime/resources";
import { Checkpoint, parseParams } from "../src/rpc";
import type { TaskStore } from "../src/store/types";

export function checkpointService(resources: Resources): ServiceSchema {
  let store: TaskStore | undefined;
  const db = (): TaskStore => {
    if (!store) throw new Error("checkpoint service is not started");
    return store;
  };
  const action = <S extends z.ZodType, R>(name: keyof typeof Checkpoint, schema: S, fn: (p: z.output<S>) => Promise<R>) => ({
    handler: (ctx: Context) => fn(parseParams(schema, ctx.params, `checkpoint.${name}`) as z.output<S>),
  });
  return {
    name: "checkpoint",
    actions: {
      createTask: action("createTask", Checkpoint.createTask, (p) => db().createTask(p.task, p.idempotencyKey)),
      getTask: action("getTask", Checkpoint.getTask, (p) => db().getTask(p.id)),
      listSteps: action("listSteps", Checkpoint.listSteps, (p) => db().listSteps(p.taskId)),
      claimTask: action("claimTask", Checkpoint.claimTask, (p) => db().claimTask(p.id, p.owner)),
      appendStep: action("appendStep", Checkpoint.appendStep, (p) => db().appendStep(p.taskId, p.fence, p.step, p.usageDelta)),
      finishTask: action("finishTask", Checkpoint.finishTask, (p) => db().finishTask(p.taskId, p.fence, p.outcome)),
      releaseTask: action("releaseTask", Checkpoint.releaseTask, (p) => db().releaseTask(p.taskId, p.fence, { countAttempt: p.countAttempt })),
      touchWakeup: action("touchWakeup", Checkpoint.touchWakeup, (p) => db().touchWakeup(p.taskIds)),
      listStaleQueued: action("listStaleQueued", Checkpoint.listStaleQueued, (p) => db().listStaleQueued(p.olderThanMs, p.limit)),
      listRunning: action("listRunning", Checkpoint.listRunning, (p) => db().listRunning(p.limit)),
      countByStatus: { handler: () => db().countByStatus() },
      listDeadLetters: action("listDeadLetters", Checkpoint.listDeadLetters, (p) => db().listDeadLetters(p.limit)),
      redrive: action("redrive", Checkpoint.redrive, (p) => db().redrive(p.taskId)),
    },
    async started() {
      store = (await resources.database()).store;
      resources.health.register("checkpoint");
    },
    stopped() {
      resources.health.unregister("checkpoint");
    },
  };
}
