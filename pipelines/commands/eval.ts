/** `wellspring eval`: rolls out the emulators on the test split, scores them and writes the report. */
import { settingsHelp } from '../cli/config.js';
import type { Command } from '../cli/command.js';
import { evaluate, evaluateDefaults, evaluateSettings, mergeEvaluation, EVALUATE_MUTABLE } from '../jobs/evaluate.js';
import { parseShard } from '../cli/shard.js';
import { parseBands, summarize, type MetricsResult } from '../../src/sinks/metrics/index.js';
import { COMMON_OPTIONS_HELP, openPipelineRun, parsePipelineArgs, withInterrupt } from '../cli/pipeline-command.js';

const help = `Usage: wellspring eval --ae AE_RUN --cache CACHE_RUN --data ROOT [--surrogate RUN] [--diffusion RUN] [--student RUN]
                     [--guidance subsample|downscale|mask] [--save-rollouts] --run DIR
       wellspring eval --merge --run DIR

For each test trajectory, rolls out every given emulator from the first "context" encoded states (diffusion:
an ensemble), decodes the states, and scores them in physical units against the simulation, together with the
autoencoder's own reconstruction and the baselines (persistence: the last context state repeated; spatial-mean:
each field's spatial mean of the true frame, VRMSE ~1 by construction; --set baselines=[] for none). Writes
DIR/results/ (results.json, metrics.csv, metrics.arrow, report.html, frame-grid PNGs). With --save-rollouts, also
DIR/results/rollouts/<model>.arrow: every decoded state with its
truth, ensemble members, lead and origin (file, trajectory, start, frame), tensors as arrow.fixed_shape_tensor
(pyarrow: pyarrow.ipc.open_file(path).read_all().column("members").combine_chunks().to_numpy_ndarray()).

Guided rollouts (data assimilation): --guidance OPERATOR also rolls the diffusion emulator out with guidance
(guidance.method: mmps or dps) on noisy observations of the simulated states (guidance.noise, physical units),
scored as the model "diffusion+<method>" next to the unguided one. Operator options: guidance.stride and
guidance.offset (subsample), guidance.factor (downscale), guidance.mask (a JSON file of H rows of W 0/1) or
guidance.sensors (random positions) for mask; guidance.fields restricts the observed fields; guidance.every
observes every n-th lead. Example: --guidance subsample --set guidance.stride=16 --set guidance.method=mmps

Threads: the ensembles of the diffusion emulator and the student are rolled out on worker threads, each with
its own wasm backend and copy of the weights (--set workers=N; default 0: one per core on wasm, the main thread
on TensorFlow or WebGPU); the scores do not depend on the count. Guided models run on the main thread.

Scaling out: --shard i/n evaluates every n-th trajectory into DIR/results/shard-i-of-n (default:
SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT when set); "wellspring eval --merge --run DIR" pools the shards.

Options:
  --ae DIR             train-ae run directory
  --cache DIR          cache run directory
  --data ROOT          dataset root (truth)
  --surrogate DIR      train-surrogate run directory
  --diffusion DIR      train-diffusion run directory
  --student DIR        distill run directory (the one-step student; an ensemble like diffusion)
  --guidance OP        also a guided diffusion model observing the truth by OP (subsample, downscale, mask)
  --shard i/n          this process's share of the trajectories
  --merge              pool shard results and render the report
  --save-rollouts      also save the decoded rollouts (setting saveRollouts)
${COMMON_OPTIONS_HELP}

Settings and defaults:
${settingsHelp(evaluateDefaults, evaluateSettings)}`;

/** The step's headline figures: VRMSE (all fields pooled) of each model per lead-time band. */
function headline(result: MetricsResult, bands: string): string[] {
  const { bandRows } = summarize(result, { bands: parseBands(bands) }).aggregates;
  return result.models.map((model) => {
    const cells = bandRows.filter((r) => r.model === model && r.field === 'all').map((r) => `${r.band} ${r.metrics.vrmse.mean.toPrecision(3)}`);
    return `eval: ${model} VRMSE (all fields) by lead band: ${cells.join(', ') || 'no band scored'}`;
  });
}

export const command: Command = {
  name: 'eval',
  summary: 'Roll out emulators on the test split, score them and write the report',
  help,
  async run(argv) {
    const { config, runDir, values } = await parsePipelineArgs(argv, evaluateDefaults, {
      ae: { type: 'string' },
      cache: { type: 'string' },
      data: { type: 'string' },
      surrogate: { type: 'string' },
      diffusion: { type: 'string' },
      student: { type: 'string' },
      guidance: { type: 'string' },
      shard: { type: 'string' },
      merge: { type: 'boolean' },
      'save-rollouts': { type: 'boolean' },
    });
    if (values.merge) {
      const report = await mergeEvaluation(runDir, config.bands);
      console.error(`merged shard results; report: ${report}`);
      return 0;
    }
    if (values.ae) config.autoencoder = values.ae as string;
    if (values.cache) config.cache = values.cache as string;
    if (values.data) config.data.root = values.data as string;
    if (values.surrogate) config.emulators.surrogate = values.surrogate as string;
    if (values.diffusion) config.emulators.diffusion = values.diffusion as string;
    if (values.student) config.emulators.student = values.student as string;
    if (values['save-rollouts']) config.saveRollouts = true;
    if (values.guidance) config.guidance.operator = values.guidance as string;
    const shard = parseShard(values.shard as string | undefined);
    const run = await openPipelineRun(runDir, 'eval', config, EVALUATE_MUTABLE);
    const { dir, result } = await withInterrupt((signal) => evaluate(config, run, shard, signal));
    console.error(`results in ${dir}; report: ${dir}/report.html`);
    for (const line of headline(result, config.bands)) console.log(line);
    return 0;
  },
};
