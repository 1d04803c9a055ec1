/**
 * The operator's dashboard: hand-written HTML, CSS and JavaScript in `assets/`, shipped in the package and
 * served by the `api` role under `/dashboard` (README, "Dashboard"). The page talks only to the public
 * `/v1` routes, with the operator's API key. Every answer carries a strict Content-Security-Policy: the
 * page loads nothing from anywhere else and runs no inline script. Files are answered with an ETag and
 * `Cache-Control: no-cache`, so a browser revalidates each load and gets a `304` while nothing changed.
 */
import { createHash } from "node:crypto";
import fs from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import path from "node:path";
import { RouteNotFoundError } from "../errors";
import { projectRoot } from "../paths";

/** Where the dashboard is mounted; `GET /` redirects here. */
export const DASHBOARD_PATH = "/dashboard";

/** Same-origin only, no inline script or style, no plugins, never framed. */
export const DASHBOARD_CSP = "default-src 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'; form-action 'none'";

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".svg": "image/svg+xml",
};

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

/** The assets folder of this installation: `src/dashboard/assets` of the package, whether run from src/ or dist/. */
export function dashboardAssetsDir(): string {
  return path.join(projectRoot(), "src", "dashboard", "assets");
}

/**
 * The dashboard's files, read once (on first use) from one flat folder. Only a file found there is ever
 * answered, by its bare name, so no request path can reach outside it.
 */
export class DashboardAssets {
  private assets: Map<string, Asset> | undefined;

  constructor(private readonly dir: string = dashboardAssetsDir()) {}

  private load(): Map<string, Asset> {
    if (this.assets) return this.assets;
    const assets = new Map<string, Asset>();
    // A build that left the folder out (it holds no TypeScript, tsc copies nothing) answers 404s that say so.
    if (!fs.existsSync(this.dir)) throw new RouteNotFoundError(`the dashboard's files are not installed (no folder ${this.dir})`);
    for (const name of fs.readdirSync(this.dir)) {
      const type = CONTENT_TYPES[path.extname(name)];
      if (type === undefined) continue;
      const body = fs.readFileSync(path.join(this.dir, name));
      assets.set(name, { body, type, etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"` });
    }
    return (this.assets = assets);
  }

  /**
   * Answers `GET /dashboard` (the page) and `GET /dashboard/<file>`; `file` is the path below the mount.
   * An unknown file is a 404 (thrown, for the gateway's one error body).
   */
  serve(req: IncomingMessage, res: ServerResponse, file: string | undefined): void {
    const name = file === undefined || file === "" ? "index.html" : file;
    const asset = this.load().get(name);
    if (!asset) throw new RouteNotFoundError(`no dashboard file ${JSON.stringify(name.slice(0, 100))}`);
    const headers = {
      "Content-Type": asset.type,
      ETag: asset.etag,
      "Cache-Control": "no-cache",
      "Content-Security-Policy": DASHBOARD_CSP,
      "X-Content-Type-Options": "nosniff",
      "Referrer-Policy": "no-referrer",
    };
    if (req.headers["if-none-match"]?.split(/\s*,\s*/).includes(asset.etag)) {
      res.writeHead(304, headers);
      res.end();
      return;
    }
    res.writeHead(200, { ...headers, "Content-Length": asset.body.length });
    res.end(asset.body);
  }
}

/** `GET /`: the dashboard is what a browser pointed at the node's port wants. */
export function redirectToDashboard(res: ServerResponse): void {
  res.writeHead(302, { Location: `${DASHBOARD_PATH}/`, "Content-Length": 0 });
  res.end();
}
