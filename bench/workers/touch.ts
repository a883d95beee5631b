// Benchmark worker: touches one element of the item's array and moves it back.
import { transferResult } from '../../src/streams/transfer.js';

export default function touch(item: { data: Float32Array }): { data: Float32Array } {
  item.data[0] = (item.data[0] as number) + 1;
  return transferResult(item);
}
