#ifndef SPECOLA_POWER_LOSS_VFS_H
#define SPECOLA_POWER_LOSS_VFS_H

/// The name the power-loss VFS registers under.
#define SPECOLA_POWER_LOSS_VFS_NAME "specola-power-loss"

/// Registers an SQLite VFS that wraps the default one and keeps every write to a
/// database, WAL or journal file in this process's memory until the file is synced
/// (xSync): only then does it reach the disk. Killing the process (kill -9) therefore
/// loses exactly what a power cut would lose: every write not yet synced.
/// For tests only. `make_default` != 0 makes every later connection use it.
/// Returns an SQLite result code; registering twice is harmless.
int specola_power_loss_vfs_register(int make_default);

/// Bytes written but not yet synced, over all files of this process (for tests).
long long specola_power_loss_vfs_unsynced_bytes(void);

#endif
