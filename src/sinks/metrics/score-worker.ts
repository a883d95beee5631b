/**
 * Worker-thread entry point of the metric sink (MetricsOptions.threads > 1): scores one prepared chunk and
 * moves the packed scores back to the main thread without copying.
 */
import { transferResult } from '../../streams/transfer.js';
import { scoreChunk, type ChunkScores, type PreparedChunk, type ScoreOptions } from './score.js';

export interface ScoreTask {
  chunk: PreparedChunk;
  options: ScoreOptions;
}

export default function score(task: ScoreTask): ChunkScores {
  return transferResult(scoreChunk(task.chunk, task.options));
}
