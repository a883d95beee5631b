/**
 * Pipeline configuration: a YAML or JSON file merged over a pipeline's defaults, then `--set a.b=value`
 * overrides from the command line. Every key must exist in the defaults and keep its type, so a typo or a wrong
 * value stops the run before any work, with the file and key named.
 */
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { UsageError } from './command.js';

export type ConfigValue = string | number | boolean | null | ConfigValue[] | { [key: string]: ConfigValue };
export type ConfigObject = { [key: string]: ConfigValue };

/** A configuration error: names where the bad value came from and what was expected. */
export class ConfigError extends UsageError {
  override readonly name = 'ConfigError';
}

function isObject(v: unknown): v is ConfigObject {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function typeName(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'list' : typeof v;
}

/**
 * Merges `override` into `base`. Keys must exist in `base`; values must have the base value's type (numbers,
 * strings, booleans, lists, objects); a `null` default accepts any value. `origin` names the source in errors.
 */
export function mergeConfig<T extends ConfigObject>(base: T, override: unknown, origin: string, path = ''): T {
  if (!isObject(override)) {
    throw new ConfigError(`${origin}: ${path || 'the configuration'} must be a mapping of keys to values, got ${typeName(override)}`);
  }
  const out: ConfigObject = { ...base };
  for (const [key, value] of Object.entries(override)) {
    const where = path ? `${path}.${key}` : key;
    if (!(key in base)) {
      const known = Object.keys(base).join(', ');
      throw new ConfigError(`${origin}: unknown key "${where}" (known keys${path ? ` of ${path}` : ''}: ${known})`);
    }
    const current = base[key];
    if (current === null || current === undefined) out[key] = value as ConfigValue;
    else if (isObject(current)) out[key] = mergeConfig(current, value, origin, where);
    else if (typeName(current) !== typeName(value)) {
      throw new ConfigError(`${origin}: "${where}" must be a ${typeName(current)} (like ${JSON.stringify(current)}), got ${JSON.stringify(value)}`);
    } else out[key] = value as ConfigValue;
  }
  return out as T;
}

/** Parses one `key.path=value` override; the value is read as YAML (`3`, `true`, `[1, 2]`, `text`). */
export function parseOverride(text: string): ConfigObject {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new ConfigError(`--set ${text}: expected key=value (e.g. --set train.steps=200)`);
  const keys = text.slice(0, eq).split('.');
  let value: ConfigValue;
  try {
    value = parseYaml(text.slice(eq + 1)) as ConfigValue;
  } catch (err) {
    throw new ConfigError(`--set ${text}: the value is not valid YAML (${(err as Error).message.split('\n')[0]}); quote strings, e.g. --set 'key="a: b"'`);
  }
  for (const key of keys.reverse()) value = { [key]: value };
  return value as ConfigObject;
}

/** Reads a YAML or JSON file into an object, with an error naming the file on failure. */
export async function readConfigFile(path: string): Promise<ConfigObject> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`config file ${path}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let parsed: unknown;
  try {
    parsed = path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new ConfigError(`config file ${path}: not valid ${path.endsWith('.json') ? 'JSON' : 'YAML'} (${(err as Error).message.split('\n')[0]})`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (!isObject(parsed)) throw new ConfigError(`config file ${path}: expected a mapping at the top level, got ${typeName(parsed)}`);
  return parsed;
}

/** Defaults, then the file (if any), then each `--set` override, in order. */
export async function resolveConfig<T extends ConfigObject>(defaults: T, file: string | undefined, overrides: string[] = []): Promise<T> {
  let config = defaults;
  if (file) config = mergeConfig(config, await readConfigFile(file), `config file ${file}`);
  for (const o of overrides) config = mergeConfig(config, parseOverride(o), `--set ${o}`);
  return config;
}

/**
 * One description per setting of a defaults object: the same keys, a string for each setting, a nested object
 * for each group. Declared next to the defaults with this type, so a setting without a description (or a
 * description of a setting that does not exist) does not compile: defaults, descriptions, `--help` and
 * validation stay one source.
 */
export type SettingDescriptions<T> = {
  [K in keyof T]-?: T[K] extends readonly unknown[] ? string : T[K] extends object ? SettingDescriptions<T[K]> : string;
};

function helpValue(v: ConfigValue): string {
  if (typeof v === 'string') return v === '' || /^[\s\-?:,[\]{}#&*!|>'"%@`]|[:#]\s|^(true|false|null|~|[\d.+-].*)$/i.test(v) ? JSON.stringify(v) : v;
  if (Array.isArray(v)) return `[${v.map(helpValue).join(', ')}]`;
  return String(v);
}

/**
 * The "Settings and defaults" block of a command's help: one line per setting, `key: default` then its
 * description, groups indented under their key (YAML-like, so a line can be pasted into a --config file).
 */
export function settingsHelp<T extends ConfigObject>(defaults: T, descriptions: SettingDescriptions<T>, indent = '  '): string {
  const lines: [string, string][] = [];
  const walk = (obj: ConfigObject, desc: Record<string, unknown>, pad: string) => {
    for (const [key, value] of Object.entries(obj)) {
      const d = desc[key];
      if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
        lines.push([`${pad}${key}:`, '']);
        walk(value, (d ?? {}) as Record<string, unknown>, `${pad}  `);
      } else lines.push([`${pad}${key}: ${helpValue(value)}`, typeof d === 'string' ? d : '']);
    }
  };
  walk(defaults, descriptions as Record<string, unknown>, indent);
  const width = Math.min(40, Math.max(...lines.filter(([, d]) => d).map(([l]) => l.length)) + 2);
  return lines.map(([l, d]) => (d ? `${l.padEnd(width)}${l.length >= width ? '  ' : ''}${d}` : l)).join('\n');
}

/** `defaults` without the top-level `keys` (a command that shares a job's defaults but not all of its settings). */
export function omitSettings<T extends ConfigObject, K extends keyof T>(defaults: T, keys: readonly K[]): Omit<T, K> {
  const out: ConfigObject = { ...defaults };
  for (const k of keys) delete out[k as string];
  return out as Omit<T, K>;
}
