// An SQLite VFS for power-loss tests: the page cache of a machine whose power can be cut.
//
// Each database, WAL or journal file has an in-memory image (its whole content as this
// process sees it), shared by every handle on that path. Reads and writes use the image;
// only xSync copies the blocks written since the last sync to the real file and syncs it.
// So the disk holds only synced data, and kill -9 of the process drops everything else,
// as a power cut does. Locks and the WAL index (shared memory) go to the wrapped VFS.
#include "PowerLossVFS.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

enum { BLOCK = 4096 };

typedef struct Image {
    char *path;
    unsigned char *data;
    sqlite3_int64 size, capacity;
    unsigned char *dirty;       // one flag per BLOCK of `data`, set by writes since the last sync
    sqlite3_int64 dirtyCapacity;
    int resized;                // the size changed since the last sync
    int handles;
    struct Image *next;
} Image;

typedef struct File {
    sqlite3_file base;
    Image *image;               // NULL: a temporary file, passed through
    sqlite3_file *real;         // the wrapped VFS's file, right after this struct
} File;

static pthread_mutex_t imagesLock = PTHREAD_MUTEX_INITIALIZER;
static Image *images;
static sqlite3_vfs *wrapped;
static sqlite3_vfs powerLossVFS;

static Image *findImage(const char *path) {
    for (Image *image = images; image; image = image->next)
        if (strcmp(image->path, path) == 0) return image;
    return NULL;
}

static void freeImage(Image *image) {
    for (Image **link = &images; *link; link = &(*link)->next) {
        if (*link == image) {
            *link = image->next;
            break;
        }
    }
    free(image->path);
    free(image->data);
    free(image->dirty);
    free(image);
}

static int isDirty(const Image *image) {
    if (image->resized) return 1;
    for (sqlite3_int64 i = 0; i < image->dirtyCapacity; i++)
        if (image->dirty[i]) return 1;
    return 0;
}

static int reserve(Image *image, sqlite3_int64 size) {
    if (size > image->capacity) {
        sqlite3_int64 capacity = image->capacity ? image->capacity : BLOCK;
        while (capacity < size) capacity *= 2;
        unsigned char *data = realloc(image->data, (size_t)capacity);
        if (!data) return SQLITE_NOMEM;
        memset(data + image->capacity, 0, (size_t)(capacity - image->capacity));
        image->data = data;
        image->capacity = capacity;
    }
    sqlite3_int64 blocks = (image->capacity + BLOCK - 1) / BLOCK;
    if (blocks > image->dirtyCapacity) {
        unsigned char *dirty = realloc(image->dirty, (size_t)blocks);
        if (!dirty) return SQLITE_NOMEM;
        memset(dirty + image->dirtyCapacity, 0, (size_t)(blocks - image->dirtyCapacity));
        image->dirty = dirty;
        image->dirtyCapacity = blocks;
    }
    return SQLITE_OK;
}

// MARK: - file methods

static int plClose(sqlite3_file *file) {
    File *f = (File *)file;
    if (f->image) {
        pthread_mutex_lock(&imagesLock);
        // Unsynced data outlives the handle, as in a page cache; a clean image can go.
        if (--f->image->handles == 0 && !isDirty(f->image)) freeImage(f->image);
        pthread_mutex_unlock(&imagesLock);
    }
    return f->real->pMethods->xClose(f->real);
}

static int plRead(sqlite3_file *file, void *buffer, int amount, sqlite3_int64 offset) {
    File *f = (File *)file;
    if (!f->image) return f->real->pMethods->xRead(f->real, buffer, amount, offset);
    pthread_mutex_lock(&imagesLock);
    Image *image = f->image;
    sqlite3_int64 available = image->size > offset ? image->size - offset : 0;
    if (available > amount) available = amount;
    if (available > 0) memcpy(buffer, image->data + offset, (size_t)available);
    pthread_mutex_unlock(&imagesLock);
    if (available < amount) {
        memset((unsigned char *)buffer + available, 0, (size_t)(amount - available));
        return SQLITE_IOERR_SHORT_READ;
    }
    return SQLITE_OK;
}

static int plWrite(sqlite3_file *file, const void *buffer, int amount, sqlite3_int64 offset) {
    File *f = (File *)file;
    if (!f->image) return f->real->pMethods->xWrite(f->real, buffer, amount, offset);
    pthread_mutex_lock(&imagesLock);
    Image *image = f->image;
    int rc = reserve(image, offset + amount);
    if (rc == SQLITE_OK) {
        memcpy(image->data + offset, buffer, (size_t)amount);
        for (sqlite3_int64 block = offset / BLOCK; block <= (offset + amount - 1) / BLOCK; block++) image->dirty[block] = 1;
        if (offset + amount > image->size) {
            image->size = offset + amount;
            image->resized = 1;
        }
    }
    pthread_mutex_unlock(&imagesLock);
    return rc;
}

static int plTruncate(sqlite3_file *file, sqlite3_int64 size) {
    File *f = (File *)file;
    if (!f->image) return f->real->pMethods->xTruncate(f->real, size);
    pthread_mutex_lock(&imagesLock);
    Image *image = f->image;
    int rc = reserve(image, size);
    if (rc == SQLITE_OK && size != image->size) {
        if (size < image->size) memset(image->data + size, 0, (size_t)(image->size - size));
        image->size = size;
        image->resized = 1;
    }
    pthread_mutex_unlock(&imagesLock);
    return rc;
}

/// Copies the blocks written since the last sync to the real file, then syncs it.
static int plSync(sqlite3_file *file, int flags) {
    File *f = (File *)file;
    if (f->image) {
        pthread_mutex_lock(&imagesLock);
        Image *image = f->image;
        int rc = SQLITE_OK;
        if (image->resized) rc = f->real->pMethods->xTruncate(f->real, image->size);
        sqlite3_int64 blocks = (image->size + BLOCK - 1) / BLOCK;
        for (sqlite3_int64 block = 0; rc == SQLITE_OK && block < blocks;) {
            if (!image->dirty[block]) {
                block++;
                continue;
            }
            sqlite3_int64 end = block;
            while (end < blocks && image->dirty[end]) end++;
            sqlite3_int64 offset = block * BLOCK;
            sqlite3_int64 stop = end * BLOCK < image->size ? end * BLOCK : image->size;
            rc = f->real->pMethods->xWrite(f->real, image->data + offset, (int)(stop - offset), offset);
            block = end;
        }
        if (rc == SQLITE_OK) {
            memset(image->dirty, 0, (size_t)image->dirtyCapacity);
            image->resized = 0;
        }
        pthread_mutex_unlock(&imagesLock);
        if (rc != SQLITE_OK) return rc;
    }
    return f->real->pMethods->xSync(f->real, flags);
}

static int plFileSize(sqlite3_file *file, sqlite3_int64 *size) {
    File *f = (File *)file;
    if (!f->image) return f->real->pMethods->xFileSize(f->real, size);
    pthread_mutex_lock(&imagesLock);
    *size = f->image->size;
    pthread_mutex_unlock(&imagesLock);
    return SQLITE_OK;
}

static int plLock(sqlite3_file *file, int level) {
    File *f = (File *)file;
    return f->real->pMethods->xLock(f->real, level);
}

static int plUnlock(sqlite3_file *file, int level) {
    File *f = (File *)file;
    return f->real->pMethods->xUnlock(f->real, level);
}

static int plCheckReservedLock(sqlite3_file *file, int *out) {
    File *f = (File *)file;
    return f->real->pMethods->xCheckReservedLock(f->real, out);
}

static int plFileControl(sqlite3_file *file, int op, void *argument) {
    File *f = (File *)file;
    // Size hints would grow the real file behind the image's back.
    if (f->image && (op == SQLITE_FCNTL_SIZE_HINT || op == SQLITE_FCNTL_CHUNK_SIZE)) return SQLITE_OK;
    return f->real->pMethods->xFileControl(f->real, op, argument);
}

static int plSectorSize(sqlite3_file *file) {
    File *f = (File *)file;
    return f->real->pMethods->xSectorSize(f->real);
}

static int plDeviceCharacteristics(sqlite3_file *file) {
    File *f = (File *)file;
    return f->real->pMethods->xDeviceCharacteristics(f->real);
}

static int plShmMap(sqlite3_file *file, int region, int size, int extend, void volatile **out) {
    File *f = (File *)file;
    return f->real->pMethods->xShmMap(f->real, region, size, extend, out);
}

static int plShmLock(sqlite3_file *file, int offset, int n, int flags) {
    File *f = (File *)file;
    return f->real->pMethods->xShmLock(f->real, offset, n, flags);
}

static void plShmBarrier(sqlite3_file *file) {
    File *f = (File *)file;
    f->real->pMethods->xShmBarrier(f->real);
}

static int plShmUnmap(sqlite3_file *file, int deleteFlag) {
    File *f = (File *)file;
    return f->real->pMethods->xShmUnmap(f->real, deleteFlag);
}

// Version 2: no xFetch, so SQLite never memory-maps the real file past the image.
static const sqlite3_io_methods methods = {
    2, plClose, plRead, plWrite, plTruncate, plSync, plFileSize, plLock, plUnlock, plCheckReservedLock,
    plFileControl, plSectorSize, plDeviceCharacteristics, plShmMap, plShmLock, plShmBarrier, plShmUnmap,
};

// MARK: - VFS methods

static int plOpen(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *outFlags) {
    (void)vfs;
    File *f = (File *)file;
    f->base.pMethods = NULL;
    f->image = NULL;
    f->real = (sqlite3_file *)&f[1];
    int rc = wrapped->xOpen(wrapped, name, f->real, flags, outFlags);
    if (rc != SQLITE_OK) {
        if (f->real->pMethods) f->real->pMethods->xClose(f->real);
        return rc;
    }
    if (name && (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL | SQLITE_OPEN_MAIN_JOURNAL))) {
        pthread_mutex_lock(&imagesLock);
        Image *image = findImage(name);
        if (!image) {
            // First use in this process: the image starts as what the disk holds.
            sqlite3_int64 size = 0;
            rc = f->real->pMethods->xFileSize(f->real, &size);
            image = rc == SQLITE_OK ? calloc(1, sizeof(Image)) : NULL;
            if (image) {
                image->path = strdup(name);
                rc = image->path ? reserve(image, size) : SQLITE_NOMEM;
                if (rc == SQLITE_OK && size > 0) rc = f->real->pMethods->xRead(f->real, image->data, (int)size, 0);
                image->size = size;
                if (rc == SQLITE_OK) {
                    image->next = images;
                    images = image;
                } else {
                    free(image->path);
                    free(image->data);
                    free(image->dirty);
                    free(image);
                    image = NULL;
                }
            } else if (rc == SQLITE_OK) {
                rc = SQLITE_NOMEM;
            }
        }
        if (image) image->handles++;
        pthread_mutex_unlock(&imagesLock);
        if (!image) {
            f->real->pMethods->xClose(f->real);
            return rc;
        }
        f->image = image;
    }
    f->base.pMethods = &methods;
    return SQLITE_OK;
}

static int plDelete(sqlite3_vfs *vfs, const char *name, int syncDirectory) {
    (void)vfs;
    pthread_mutex_lock(&imagesLock);
    Image *image = findImage(name);
    if (image && image->handles == 0) freeImage(image);
    else if (image) {
        // Still open elsewhere: the name is gone, the content stays for those handles.
        image->size = 0;
        image->resized = 1;
    }
    pthread_mutex_unlock(&imagesLock);
    return wrapped->xDelete(wrapped, name, syncDirectory);
}

static int plAccess(sqlite3_vfs *vfs, const char *name, int flags, int *out) {
    (void)vfs;
    if (flags == SQLITE_ACCESS_EXISTS) {
        pthread_mutex_lock(&imagesLock);
        Image *image = findImage(name);
        int exists = image && image->size > 0;
        pthread_mutex_unlock(&imagesLock);
        if (exists) {
            *out = 1;
            return SQLITE_OK;
        }
    }
    return wrapped->xAccess(wrapped, name, flags, out);
}

int specola_power_loss_vfs_register(int make_default) {
    static pthread_mutex_t registration = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&registration);
    int rc = SQLITE_OK;
    if (!wrapped) {
        rc = sqlite3_initialize();
        sqlite3_vfs *base = rc == SQLITE_OK ? sqlite3_vfs_find(NULL) : NULL;
        if (base) {
            powerLossVFS = *base;
            powerLossVFS.iVersion = base->iVersion < 3 ? base->iVersion : 3;
            powerLossVFS.szOsFile = (int)sizeof(File) + base->szOsFile;
            powerLossVFS.pNext = NULL;
            powerLossVFS.zName = SPECOLA_POWER_LOSS_VFS_NAME;
            powerLossVFS.xOpen = plOpen;
            powerLossVFS.xDelete = plDelete;
            powerLossVFS.xAccess = plAccess;
            wrapped = base;
        } else if (rc == SQLITE_OK) {
            rc = SQLITE_ERROR;
        }
    }
    if (rc == SQLITE_OK) rc = sqlite3_vfs_register(&powerLossVFS, make_default);
    pthread_mutex_unlock(&registration);
    return rc;
}

long long specola_power_loss_vfs_unsynced_bytes(void) {
    long long total = 0;
    pthread_mutex_lock(&imagesLock);
    for (Image *image = images; image; image = image->next)
        for (sqlite3_int64 i = 0; i < image->dirtyCapacity; i++)
            if (image->dirty[i]) total += BLOCK;
    pthread_mutex_unlock(&imagesLock);
    return total;
}
