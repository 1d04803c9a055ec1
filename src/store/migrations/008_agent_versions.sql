-- Prompt versions as data (src/store/agentVersions.ts, src/rollout/). Every version an agent has run
-- or may run is kept with the agent file text it is the hash of, so a task pinned to a version runs that
-- version on every attempt, whatever agent files the planner that picks it up was deployed with.
CREATE TABLE agent_versions (
  agent text NOT NULL, version text NOT NULL,
  source text NOT NULL,               -- the agent file text the version is the hash of
  origin text NOT NULL,               -- 'file' | 'canary'
  first_seen timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (agent, version));

-- One row per agent: which version new tasks run (stable), and the canary being rolled out, if any.
-- Every change bumps `revision`; the judge's decisions are conditional on the revision it read.
CREATE TABLE agent_rollouts (
  agent text PRIMARY KEY,
  stable_version text NOT NULL,
  file_version text NOT NULL,          -- the version the agent files had when last seen at start-up
  canary_version text,
  canary_weight integer NOT NULL DEFAULT 0 CHECK (canary_weight BETWEEN 0 AND 100),
  steps integer[] NOT NULL DEFAULT '{5,25,50,100}',
  step_index integer NOT NULL DEFAULT 0,
  min_tasks_per_step integer NOT NULL DEFAULT 100,
  canary_state text NOT NULL DEFAULT 'none',   -- none|running|promoted|rolled_back|aborted
  canary_started_at timestamptz, step_started_at timestamptz, decided_at timestamptz,
  evidence jsonb,
  revision bigint NOT NULL DEFAULT 0,          -- bumped by every change; decisions are conditional on it
  updated_at timestamptz NOT NULL DEFAULT now());

-- Tasks per version (GET /v1/agents) and the judge's per-version windows.
CREATE INDEX tasks_agent_version_created ON tasks (agent, prompt_version, created_at);
