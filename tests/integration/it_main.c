/*
 * it_main.c - the integration test binary: one suite, one TCase per test
 * file, all sharing the throwaway cluster of harness.c. Exit status is 0
 * only when every test passed and no daemon log holds a sanitizer report.
 */
#include <stdio.h>
#include <stdlib.h>

#include "harness.h"

int main(void)
{
    Suite *s = suite_create("integration");
    suite_add_tcase(s, tc_flows());
    suite_add_tcase(s, tc_rows());
    suite_add_tcase(s, tc_errors());
    suite_add_tcase(s, tc_concurrent());
    suite_add_tcase(s, tc_races());
    suite_add_tcase(s, tc_restart());
    suite_add_tcase(s, tc_fuzz());
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    bool clean = h_cluster_stop(failed != 0);
    if (!clean)
        fprintf(stderr, "integration: a daemon reported a sanitizer error (see above)\n");
    return failed == 0 && clean ? EXIT_SUCCESS : EXIT_FAILURE;
}
