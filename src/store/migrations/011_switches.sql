-- Kill switches (src/store/switches.ts, src/switches/): one row per switch ever set, a lifted
-- one kept with paused = false. Every process that needs them reads the whole table every
-- few hundred milliseconds, so it stays small: a row per agent, tool, model or prompt
-- version an operator has touched. `version` counts the switch's changes, so a reader can
-- tell a change it missed from one it already acted on.
CREATE TABLE switches (
  kind       text        NOT NULL CHECK (kind IN ('agent', 'tool', 'model', 'prompt')),
  name       text        NOT NULL,
  paused     boolean     NOT NULL,
  in_flight  text        NOT NULL CHECK (in_flight IN ('drain', 'abort')),
  updated_by text        NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  version    bigint      NOT NULL DEFAULT 1,
  PRIMARY KEY (kind, name)
);

-- Every change, in the order they were made: who, when, what. Written in the statement
-- that changes the switch, so no change goes unrecorded.
CREATE TABLE switch_changes (
  id         bigserial   PRIMARY KEY,
  kind       text        NOT NULL,
  name       text        NOT NULL,
  paused     boolean     NOT NULL,
  in_flight  text        NOT NULL,
  changed_by text        NOT NULL,
  changed_at timestamptz NOT NULL,
  version    bigint      NOT NULL
);
CREATE INDEX switch_changes_scope_idx ON switch_changes (kind, name, id);
