/** `wellspring train-surrogate`: trains the deterministic latent surrogate on a latent cache. */
import { emulatorCommand } from '../cli/emulator-command.js';

export const command = emulatorCommand('surrogate');
