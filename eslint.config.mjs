/**
 * Lint for Clawfleet: ESLint 9 flat config with typescript-eslint's type-aware rules.
 * Production code (src/, services/, app/, mixins/, moleculer.config.ts) is held to stricter rules
 * than tests and benchmarks: no `any`, no console, and only src/config.ts reads the environment.
 */
import js from "@eslint/js";
import importX, { createNodeResolver } from "eslint-plugin-import-x";
import globals from "globals";
import tseslint from "typescript-eslint";

const TS_FILES = ["src/**/*.ts", "services/**/*.ts", "app/**/*.ts", "mixins/**/*.ts", "test/**/*.ts", "testkit/**/*.ts", "bench/**/*.ts", "*.config.ts", "*.config.mts"];
const PRODUCTION_FILES = ["src/**/*.ts", "services/**/*.ts", "app/**/*.ts", "mixins/**/*.ts", "moleculer.config.ts"];
const TEST_FILES = ["test/**/*.ts", "testkit/**/*.ts", "bench/**/*.ts", "vitest.config.ts", "vitest.config.mts"];

/** Where production code lives; tests, benchmarks and their shared kit (testkit/) stay out of it. */
const PRODUCTION_DIRS = ["./src", "./services", "./app", "./mixins", "./moleculer.config.ts"];

/**
 * Which folder may import which (import-x/no-restricted-paths). test/ and bench/ share helpers
 * through testkit/ only, so a benchmark never drags in vitest; production code imports none of them;
 * and outside src/ratelimit/ production code goes through its public index.ts (tests and benchmarks
 * may reach inside: they are white-box).
 */
const IMPORT_ZONES = [
  { target: "./bench", from: "./test", message: "Benchmarks share helpers with tests through testkit/, not test/." },
  { target: "./testkit", from: ["./test", "./bench"], message: "testkit/ is shared by test/ and bench/ and depends on neither." },
  { target: PRODUCTION_DIRS, from: ["./test", "./testkit", "./bench"], message: "Production code never imports tests, benchmarks or testkit/." },
  { target: PRODUCTION_DIRS, from: "./examples", message: "Production code never imports an example: examples are users of the package, not parts of it." },
  {
    target: ["./src/!(ratelimit)/**", "./src/!(config).ts", ...PRODUCTION_DIRS.filter((d) => d !== "./src")],
    from: "./src/ratelimit",
    except: ["./index.ts"],
    message: "Import the rate limiter from src/ratelimit (its index.ts), not from the files behind it.",
  },
  {
    // The config validates the limits table with the schema in limits.ts; index.ts needs Config, so
    // the config importing index.ts would be a cycle.
    target: "./src/config.ts",
    from: "./src/ratelimit",
    except: ["./index.ts", "./limits.ts"],
    message: "src/config.ts takes the rate-limit table schema from limits.ts; everything else comes through index.ts.",
  },
];

const ENV_MESSAGE = "Read settings through the typed Config from src/config.ts; nothing else reads the environment.";

/**
 * The package's public surface (STYLE.md, "Our own model rooms"): a project imports `clawfleet` (app/index.ts)
 * and `clawfleet/mixins` (mixins/index.ts) and nothing else; package.json's `exports` map enforces that for
 * users. Examples are written as a user's project and held to the same line, by name: they import
 * `clawfleet` and `clawfleet/mixins`, never Clawfleet's files by path nor `clawfleet/<anything else>`.
 * And production code never imports an example.
 */
const EXAMPLE_FILES = ["examples/**/*.ts", "examples/**/*.js", "examples/**/*.mjs", "examples/**/*.cjs"];
const PUBLIC_SURFACE_MESSAGE =
  "Examples use only the public surface: import from \"clawfleet\" or \"clawfleet/mixins\". If an example needs more, add it to app/index.ts (the public list).";
const EXAMPLE_ZONES = [
  {
    target: "./examples",
    // Not dist/: that is where the package names resolve to when built.
    from: [...PRODUCTION_DIRS, "./bin", "./test", "./testkit", "./bench"],
    message: PUBLIC_SURFACE_MESSAGE,
  },
];

export default tseslint.config(
  {
    // Hidden folders hold local data and tool output (.clawfleet/, caches), never sources.
    ignores: ["dist/", "coverage/", "node_modules/", ".clawfleet/", ".*/"],
  },

  js.configs.recommended,

  {
    plugins: { "import-x": importX },
    // no-cycle has to parse the imported .ts files itself, so it needs the parser and the extensions too.
    settings: {
      "import-x/extensions": [".ts", ".js", ".mjs", ".cjs"],
      "import-x/parsers": { "@typescript-eslint/parser": [".ts"] },
      "import-x/resolver-next": [createNodeResolver({ extensions: [".ts", ".js", ".json"] })],
    },
  },

  {
    files: TS_FILES,
    extends: [tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-misused-promises": ["error", { checksVoidReturn: { attributes: false } }],
      "@typescript-eslint/consistent-type-imports": ["error", { prefer: "type-imports", fixStyle: "inline-type-imports" }],
      // Async implementations of Promise-returning interfaces (memory adapters, tools) need no await:
      // `async` is what turns their throws into rejections.
      "@typescript-eslint/require-await": "off",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrors: "none" }],
      // no-cycle skips type-only imports and has no option to follow them: `npm run shape` (madge)
      // catches those cycles too.
      "import-x/no-cycle": ["error", { maxDepth: 10, ignoreExternal: true }],
      "import-x/no-restricted-paths": ["error", { basePath: import.meta.dirname, zones: IMPORT_ZONES }],
    },
  },

  {
    files: PRODUCTION_FILES,
    rules: {
      "@typescript-eslint/no-explicit-any": "error",
      // The CLIs write to process.stdout / process.stderr directly; everything else logs through the broker's logger.
      "no-console": "error",
      "no-restricted-properties": ["error", { object: "process", property: "env", message: ENV_MESSAGE }],
      "no-restricted-imports": [
        "error",
        {
          paths: [
            { name: "process", importNames: ["env"], message: ENV_MESSAGE },
            { name: "node:process", importNames: ["env"], message: ENV_MESSAGE },
          ],
        },
      ],
    },
  },
  {
    files: ["src/config.ts"],
    rules: { "no-restricted-properties": "off", "no-restricted-imports": "off" },
  },

  {
    // Examples: TypeScript without type information (they are a user's project, not in our tsconfig), and
    // only the public surface.
    files: EXAMPLE_FILES,
    extends: [tseslint.configs.recommended],
    languageOptions: { sourceType: "module", globals: globals.node },
    rules: {
      "import-x/no-restricted-paths": ["error", { basePath: import.meta.dirname, zones: EXAMPLE_ZONES }],
      "no-restricted-imports": [
        "error",
        { patterns: [{ regex: "^clawfleet/(?!mixins$)", message: PUBLIC_SURFACE_MESSAGE }] },
      ],
    },
  },

  {
    // Tests and benchmarks may use `any` (mocks, fixtures) and read the environment.
    files: TEST_FILES,
    rules: {
      "@typescript-eslint/no-explicit-any": "off",
      "@typescript-eslint/no-unsafe-assignment": "off",
      "@typescript-eslint/no-unsafe-member-access": "off",
      "@typescript-eslint/no-unsafe-call": "off",
      "@typescript-eslint/no-unsafe-argument": "off",
      "@typescript-eslint/no-unsafe-return": "off",
    },
  },

  {
    // Plain JavaScript: bin/ launcher (CommonJS) and this config (ESM); no type information.
    files: ["**/*.js", "**/*.cjs"],
    languageOptions: { sourceType: "commonjs", globals: globals.node },
  },
  {
    files: ["**/*.mjs"],
    languageOptions: { sourceType: "module", globals: globals.node },
  },
);
