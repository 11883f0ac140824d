/**
 * Helpers for the processes `npm start` runs: a child started with an IPC channel stops when
 * its parent dies (the channel disconnects), so a killed `npm start` leaves nothing behind.
 */
export function exitWithParent(stop: () => void): void {
  if (!process.send) return;
  process.on("disconnect", stop);
}
