/** `wellspring train-diffusion`: trains the latent diffusion (or flow-matching) emulator on a latent cache. */
import { emulatorCommand } from '../cli/emulator-command.js';

export const command = emulatorCommand('diffusion');
