# Locates Aeron's C sources and sets AERON_SOURCE_DIR: the user's checkout
# (AERON_SOURCE_DIR, as a CMake or environment variable), or the pinned sdist
# of pyaeron==0.1.0, which carries Aeron 1.53.0-SNAPSHOT under third_party/aeron.

if (NOT AERON_SOURCE_DIR AND DEFINED ENV{AERON_SOURCE_DIR})
    set(AERON_SOURCE_DIR "$ENV{AERON_SOURCE_DIR}")
endif ()

if (AERON_SOURCE_DIR)
    if (NOT EXISTS "${AERON_SOURCE_DIR}/aeron-client/src/main/c/aeronc.h")
        message(FATAL_ERROR "AERON_SOURCE_DIR does not hold Aeron's sources: AERON_SOURCE_DIR=${AERON_SOURCE_DIR} missing=aeron-client/src/main/c/aeronc.h")
    endif ()
else ()
    tickline_fetch_sdist(pyaeron 0.1.0 65fad0d4ca6926a24620c712fdebe8db8589a4d42a8dc52f15910a868c318af0 _pyaeron)
    set(AERON_SOURCE_DIR "${_pyaeron}/third_party/aeron")
endif ()
message(STATUS "tickline: Aeron sources from ${AERON_SOURCE_DIR}")
