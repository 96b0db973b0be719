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

# Aeron's C media driver at the pinned version accepts a SETUP frame whose
# active term id precedes its initial term id (the receiver's
# aeron_receive_channel_endpoint_is_valid_setup checks term length, offset and
# MTU but not the term ids): the image it creates has a negative position and
# indexes its log buffers out of range, so one forged 40-byte datagram to any
# UDP subscription crashes the process (SIGSEGV; issue 13, item 3).  The patch
# below adds that check.  It is applied to a copy of the sources in the build
# directory (the fetched sources and their cache stay untouched, and are never
# committed here); the patch file and, for the pinned sources, the patched
# file are checked by SHA-256.  A user's own checkout (AERON_SOURCE_DIR) is
# patched too when the patch applies; if it does not (already fixed, or
# another version) the build says so and uses it as it is.
set(_tl_patch "${CMAKE_CURRENT_LIST_DIR}/patches/aeron-setup-term-ids.patch")
set(_tl_patch_sha256 89e29c9078905315cbb2822d934ca077190db6eaed4dc40456707333beb0ad47)
set(_tl_patched_file aeron-driver/src/main/c/media/aeron_receive_channel_endpoint.c)
set(_tl_patched_sha256 b7e8da6fb8c029565bb0c7d8c178235d0e9d59a023632e5b3ab53b45fb545315)
file(SHA256 "${_tl_patch}" _tl_got)
if (NOT _tl_got STREQUAL _tl_patch_sha256)
    message(FATAL_ERROR "Aeron patch failed its hash check: file=${_tl_patch} expected=${_tl_patch_sha256} got=${_tl_got}")
endif ()
string(SHA256 _tl_src_key "${AERON_SOURCE_DIR}|${_tl_patch_sha256}")
string(SUBSTRING "${_tl_src_key}" 0 16 _tl_src_key)
set(_tl_copy "${CMAKE_BINARY_DIR}/aeron-src-${_tl_src_key}")
if (NOT EXISTS "${_tl_copy}/.tickline-patched")
    file(REMOVE_RECURSE "${_tl_copy}")
    # file(COPY) keeps timestamps: an unchanged file is not rebuilt
    file(COPY "${AERON_SOURCE_DIR}/" DESTINATION "${_tl_copy}" PATTERN ".git" EXCLUDE)
    # patch(1), else git apply (a clone has git); the ceiling keeps git from taking the
    # copy for part of this repository, whose build directory it lies in
    find_program(TICKLINE_PATCH_EXECUTABLE patch)
    find_program(TICKLINE_GIT_EXECUTABLE git)
    if (TICKLINE_PATCH_EXECUTABLE)
        set(_tl_apply "${TICKLINE_PATCH_EXECUTABLE}" -p1 --forward --batch --no-backup-if-mismatch -i "${_tl_patch}")
    elseif (TICKLINE_GIT_EXECUTABLE)
        set(_tl_apply "${CMAKE_COMMAND}" -E env "GIT_CEILING_DIRECTORIES=${CMAKE_BINARY_DIR}"
                      "${TICKLINE_GIT_EXECUTABLE}" apply -p1 "${_tl_patch}")
    else ()
        message(FATAL_ERROR "the build patches Aeron's sources and needs patch or git: missing=patch,git (Debian: apt-get install patch)")
    endif ()
    execute_process(
        COMMAND ${_tl_apply}
        WORKING_DIRECTORY "${_tl_copy}"
        RESULT_VARIABLE _tl_rc OUTPUT_VARIABLE _tl_out ERROR_VARIABLE _tl_err)
    file(SHA256 "${_tl_copy}/${_tl_patched_file}" _tl_got)
    if (DEFINED _pyaeron)
        if (NOT _tl_rc EQUAL 0 OR NOT _tl_got STREQUAL _tl_patched_sha256)
            message(FATAL_ERROR "patching Aeron's pinned sources failed: patch=${_tl_patch} rc=${_tl_rc} file=${_tl_patched_file} "
                                "expected=${_tl_patched_sha256} got=${_tl_got}\n${_tl_out}\n${_tl_err}")
        endif ()
    elseif (NOT _tl_rc EQUAL 0)
        message(WARNING "tickline: the Aeron patch does not apply to AERON_SOURCE_DIR=${AERON_SOURCE_DIR} (fixed there already, "
                        "or another version): building it unpatched; check that its driver rejects a SETUP frame whose "
                        "active term id precedes its initial term id\n${_tl_out}")
        file(REMOVE_RECURSE "${_tl_copy}")
        file(COPY "${AERON_SOURCE_DIR}/" DESTINATION "${_tl_copy}" PATTERN ".git" EXCLUDE)
    endif ()
    file(TOUCH "${_tl_copy}/.tickline-patched")
endif ()
set(AERON_SOURCE_DIR "${_tl_copy}")
message(STATUS "tickline: building Aeron from the patched copy ${AERON_SOURCE_DIR}")
