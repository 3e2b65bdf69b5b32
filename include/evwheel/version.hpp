// version — the evwheel release these headers belong to.  The three numbers below are the one
// home of the version: the Makefile reads them for evwheel.pc and the CMake package files, and
// EVWHEEL_VERSION_STRING is built from them, so the two can never disagree.
//
// Numbering: MAJOR.MINOR.PATCH.  While MAJOR is 0, a MINOR step may change the API (the CMake
// version file then accepts only the same MINOR); from 1.0 on, only a MAJOR step does.
#pragma once

#define EVWHEEL_VERSION_MAJOR 0
#define EVWHEEL_VERSION_MINOR 1
#define EVWHEEL_VERSION_PATCH 0

#define EVWHEEL_VERSION_TEXT_(major, minor, patch) #major "." #minor "." #patch
#define EVWHEEL_VERSION_TEXT(major, minor, patch) EVWHEEL_VERSION_TEXT_(major, minor, patch)
// "MAJOR.MINOR.PATCH", e.g. "0.1.0".
#define EVWHEEL_VERSION_STRING \
  EVWHEEL_VERSION_TEXT(EVWHEEL_VERSION_MAJOR, EVWHEEL_VERSION_MINOR, EVWHEEL_VERSION_PATCH)
