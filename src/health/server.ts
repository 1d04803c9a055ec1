/**
 * `/health/live`, `/health/ready` and `/metrics` for processes without the `api`
 * role (planners, executors, …), so every pod has probes and a scrape target.
 */
import http from "node:http";
import type { Registry } from "prom-client";
import { liveAnswer, readyAnswer, type Health } from "./health";

export function startHealthServer(port: number, health: Health, registry: Registry): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const send = (status: number, body: string, type = "application/json; charset=utf-8") => {
      res.writeHead(status, { "Content-Type": type, "Content-Length": Buffer.byteLength(body) });
      res.end(body);
    };
    const url = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET") return send(404, JSON.stringify({ error: { type: "not_found", message: "no such route" } }));
    if (url === "/health/live" || url === "/health/ready") {
      const answer = url === "/health/live" ? liveAnswer(health) : readyAnswer(health);
      return send(answer.status, JSON.stringify(answer.body));
    }
    if (url === "/metrics") {
      registry.metrics().then(
        (text) => send(200, text, registry.contentType),
        (err: unknown) => send(500, JSON.stringify({ error: { type: "internal_error", message: (err as Error).message } })),
      );
      return;
    }
    send(404, JSON.stringify({ error: { type: "not_found", message: "no such route" } }));
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "0.0.0.0", () => resolve(server));
  });
}
