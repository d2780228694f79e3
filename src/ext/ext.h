/*
 * ext: the SQLite extensions a node loads (-extensions-path), kept as
 * rqlite keeps them: copies in one flat directory, <data>/extensions,
 * emptied at every start and filled from the flag's comma-separated
 * entries. Each entry is a directory (its regular files, not those whose
 * name starts with '.', not its subdirectories), a zip file or a gzipped
 * tar file (told by their first bytes, as rqlite does; their entries must
 * be plain files at the top level), or a single extension file. The
 * db module loads every file of the directory into every connection.
 *
 * Security never fails open: an entry that does not exist or cannot be
 * read, an archive that is corrupt or holds anything but top-level
 * regular files (a subdirectory, an absolute path, "..", a link, a
 * device), and two extensions of the same name all fail the install, and
 * the node must not start. Nothing is ever written outside the directory.
 */
#ifndef RQ_EXT_EXT_H
#define RQ_EXT_EXT_H

/* The installed extensions. */
typedef struct ext_list {
    char *dir;    /* <data>/extensions */
    char **paths; /* its extension files, sorted by name */
    int n;
} ext_list;

/* Empty (re-create) <data_dir>/extensions and install what each entry of
 * spec (comma-separated, as given to -extensions-path; NULL or "" for
 * none) names. Returns 0 with *out filled (free with ext_list_free), or -1
 * with *err (caller frees) naming the entry and the reason. */
int ext_install(const char *data_dir, const char *spec, ext_list *out, char **err);
void ext_list_free(ext_list *l);

/* The name rqlite shows for an extension: its file name. */
const char *ext_name(const char *path);

#endif
