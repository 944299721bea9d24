#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

namespace {

// ctest runs each test case in its own process, selected by name. doctest splits a
// filter at commas, so a name the filter cannot match would run nothing and "pass".
// Counting what ran turns that into a failure.
bool run_ended = false;
unsigned cases_run = 0;

struct CountCases : doctest::IReporter {
    explicit CountCases(const doctest::ContextOptions &) {}
    void report_query(const doctest::QueryData &) override {}
    void test_run_start() override {}
    void test_run_end(const doctest::TestRunStats &stats) override {
        run_ended = true;
        cases_run = stats.numTestCasesPassingFilters;
    }
    void test_case_start(const doctest::TestCaseData &) override {}
    void test_case_reenter(const doctest::TestCaseData &) override {}
    void test_case_end(const doctest::CurrentTestCaseStats &) override {}
    void test_case_exception(const doctest::TestCaseException &) override {}
    void subcase_start(const doctest::SubcaseSignature &) override {}
    void subcase_end() override {}
    void log_assert(const doctest::AssertData &) override {}
    void log_message(const doctest::MessageData &) override {}
    void test_case_skipped(const doctest::TestCaseData &) override {}
};

REGISTER_LISTENER("count-cases", 1, CountCases);

} // namespace

int main(int argc, char **argv) {
    doctest::Context context(argc, argv);
    int rc = context.run();
    if (context.shouldExit())
        return rc;
    if (run_ended && cases_run == 0) {
        std::fprintf(stderr, "no test case matched the filter (a comma in a test name?)\n");
        return 1;
    }
    return rc;
}
