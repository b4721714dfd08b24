import { booleanFlag, valueFlag } from "./flags.ts";

/** `--config FILE` and `--print-config`, the same rows for the server and the client. */
export const CONFIG_FLAGS = {
  config: valueFlag<string | null>("config", "FILE", null, (raw) => raw,
    "read settings from this TOML file, keyed by the flags' names (port = 9999);\nflags on the command line override it", undefined, { cliOnly: true }),
  printConfig: booleanFlag("print-config", "print the settings in effect as TOML, secrets redacted, and exit\n(a config file to start from)", { cliOnly: true }),
};
