// streamgrid-admin: the storage cluster's membership (list, add, remove) and
// its data migrations (status, resume), through the web server's AdminService.
#include "admin_cli/admin_cli.h"

int main(int argc, char** argv) { return streamgrid::admin_cli::RunAdminCli(argc, argv); }
