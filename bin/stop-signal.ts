/**
 * The stop request of a long-running command (`trustroll-agent run`,
 * `trustroll serve`): SIGTERM or SIGINT, listened for from the moment the
 * command starts. Installed only once the command printed that it is ready,
 * a signal sent as soon as the ready line was read could arrive before the
 * listener and kill the process without its clean stop. A signal during
 * start-up is kept and honoured once the start finished; a second one, while
 * stopping, ends the process at once (Node's default).
 */

/** Resolves with the signal's name once SIGTERM or SIGINT arrives. */
export function stopRequested(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (sig: NodeJS.Signals) => {
      process.removeListener('SIGTERM', on);
      process.removeListener('SIGINT', on);
      resolve(sig);
    };
    process.once('SIGTERM', on);
    process.once('SIGINT', on);
  });
}
