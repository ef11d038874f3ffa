/* The page at / of `popsteer serve`. */
#include "serve.h"

const char serve_page_html[] = "<!doctype html><title>popsteer</title><p>placeholder</p>";
