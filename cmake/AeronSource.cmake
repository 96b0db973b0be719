# Locates Aeron's C sources and sets AERON_SOURCE_DIR.
#
# Either the user points AERON_SOURCE_DIR (CMake variable or environment
# variable) at an Aeron checkout, or the pinned sdist of pyaeron==0.1.0 (which
# carries Aeron 1.53.0-SNAPSHOT under third_party/aeron) is fetched with pip,
# checked against its sha256 and unpacked into a cache outside the build tree,
# so rebuilds and fresh clones on the same machine don't fetch it again.
# No Aeron code is ever part of this repository.

set(TICKLINE_AERON_SDIST "pyaeron-0.1.0.tar.gz")
set(TICKLINE_AERON_SDIST_SHA256 "65fad0d4ca6926a24620c712fdebe8db8589a4d42a8dc52f15910a868c318af0")

if (NOT AERON_SOURCE_DIR AND DEFINED ENV{AERON_SOURCE_DIR})
    set(AERON_SOURCE_DIR "$ENV{AERON_SOURCE_DIR}")
endif ()

if (AERON_SOURCE_DIR)
    if (NOT EXISTS "${AERON_SOURCE_DIR}/aeron-client/src/main/c/aeronc.h")
        message(FATAL_ERROR "AERON_SOURCE_DIR does not hold Aeron's sources: AERON_SOURCE_DIR=${AERON_SOURCE_DIR} missing=aeron-client/src/main/c/aeronc.h")
    endif ()
    message(STATUS "tickline: Aeron sources from AERON_SOURCE_DIR=${AERON_SOURCE_DIR}")
    return()
endif ()

if (DEFINED ENV{TICKLINE_CACHE_DIR})
    set(_cache "$ENV{TICKLINE_CACHE_DIR}")
elseif (DEFINED ENV{XDG_CACHE_HOME})
    set(_cache "$ENV{XDG_CACHE_HOME}/tickline")
else ()
    set(_cache "$ENV{HOME}/.cache/tickline")
endif ()
set(_tarball "${_cache}/${TICKLINE_AERON_SDIST}")
set(_unpacked "${_cache}/pyaeron-0.1.0-${TICKLINE_AERON_SDIST_SHA256}")

function(_tickline_sha256_ok path out)
    set(${out} FALSE PARENT_SCOPE)
    if (EXISTS "${path}")
        file(SHA256 "${path}" _h)
        if (_h STREQUAL TICKLINE_AERON_SDIST_SHA256)
            set(${out} TRUE PARENT_SCOPE)
        endif ()
    endif ()
endfunction()

if (NOT EXISTS "${_unpacked}/third_party/aeron/aeron-client/src/main/c/aeronc.h")
    _tickline_sha256_ok("${_tarball}" _ok)
    if (NOT _ok)
        file(MAKE_DIRECTORY "${_cache}/download")
        message(STATUS "tickline: fetching ${TICKLINE_AERON_SDIST} with pip into ${_cache}")
        # --no-build-isolation: pip prepares the sdist's metadata with the
        # scikit-build-core already in this build environment instead of
        # building the sdist's build requirements (cmake) from source.
        execute_process(
            COMMAND "${Python_EXECUTABLE}" -m pip download --no-deps --no-binary :all:
                    --no-build-isolation --ignore-requires-python
                    -d "${_cache}/download" "pyaeron==0.1.0"
            RESULT_VARIABLE _rc
            OUTPUT_VARIABLE _out
            ERROR_VARIABLE _err)
        if (NOT _rc EQUAL 0)
            message(FATAL_ERROR "could not fetch Aeron sources: package=pyaeron==0.1.0 rc=${_rc}\n${_out}\n${_err}\nSet AERON_SOURCE_DIR to an Aeron checkout to build without fetching.")
        endif ()
        _tickline_sha256_ok("${_cache}/download/${TICKLINE_AERON_SDIST}" _ok)
        if (NOT _ok)
            file(SHA256 "${_cache}/download/${TICKLINE_AERON_SDIST}" _got)
            message(FATAL_ERROR "Aeron source package failed its hash check: file=${_cache}/download/${TICKLINE_AERON_SDIST} expected=${TICKLINE_AERON_SDIST_SHA256} got=${_got}")
        endif ()
        file(RENAME "${_cache}/download/${TICKLINE_AERON_SDIST}" "${_tarball}")
    endif ()
    set(_tmp "${_unpacked}.tmp")
    file(REMOVE_RECURSE "${_tmp}")
    file(ARCHIVE_EXTRACT INPUT "${_tarball}" DESTINATION "${_tmp}")
    file(REMOVE_RECURSE "${_unpacked}")
    file(RENAME "${_tmp}/pyaeron-0.1.0" "${_unpacked}")
    file(REMOVE_RECURSE "${_tmp}")
endif ()

set(AERON_SOURCE_DIR "${_unpacked}/third_party/aeron")
message(STATUS "tickline: Aeron sources from ${AERON_SOURCE_DIR}")
