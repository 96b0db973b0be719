# tickline_fetch_sdist(NAME VERSION SHA256 OUT_VAR)
#
# Fetches the source distribution NAME==VERSION from the package registry with
# pip, checks it against SHA256, unpacks it into a cache outside the build tree
# and sets OUT_VAR to the unpacked folder.  Rebuilds, and fresh clones on the
# same machine, reuse the cache.  The cache is TICKLINE_CACHE_DIR, else
# $XDG_CACHE_HOME/tickline, else ~/.cache/tickline.
#
# Third-party sources (Aeron's C client and driver; QuickFIX's data
# dictionaries) come in this way at build time and are never part of this
# repository.

function(tickline_fetch_sdist name version sha256 out_var)
    if (DEFINED ENV{TICKLINE_CACHE_DIR})
        set(cache "$ENV{TICKLINE_CACHE_DIR}")
    elseif (DEFINED ENV{XDG_CACHE_HOME})
        set(cache "$ENV{XDG_CACHE_HOME}/tickline")
    else ()
        set(cache "$ENV{HOME}/.cache/tickline")
    endif ()
    set(tarball "${cache}/${name}-${version}.tar.gz")
    set(unpacked "${cache}/${name}-${version}-${sha256}")
    if (EXISTS "${unpacked}/.complete")
        set(${out_var} "${unpacked}" PARENT_SCOPE)
        return()
    endif ()

    set(ok FALSE)
    if (EXISTS "${tarball}")
        file(SHA256 "${tarball}" got)
        if (got STREQUAL sha256)
            set(ok TRUE)
        endif ()
    endif ()
    if (NOT ok)
        file(MAKE_DIRECTORY "${cache}/download")
        message(STATUS "tickline: fetching ${name}==${version} with pip into ${cache}")
        # --no-build-isolation: pip prepares the sdist's metadata with what is
        # already in this build environment instead of building the sdist's
        # own build requirements (e.g. cmake) from source.
        execute_process(
            COMMAND "${Python_EXECUTABLE}" -m pip download --no-deps --no-binary :all:
                    --no-build-isolation --ignore-requires-python
                    -d "${cache}/download" "${name}==${version}"
            RESULT_VARIABLE rc
            OUTPUT_VARIABLE out
            ERROR_VARIABLE err)
        set(downloaded "${cache}/download/${name}-${version}.tar.gz")
        if (NOT rc EQUAL 0 OR NOT EXISTS "${downloaded}")
            message(FATAL_ERROR "could not fetch a build dependency: package=${name}==${version} rc=${rc}\n${out}\n${err}")
        endif ()
        file(SHA256 "${downloaded}" got)
        if (NOT got STREQUAL sha256)
            message(FATAL_ERROR "build dependency failed its hash check: file=${downloaded} expected=${sha256} got=${got}")
        endif ()
        file(RENAME "${downloaded}" "${tarball}")
    endif ()

    set(tmp "${unpacked}.tmp")
    file(REMOVE_RECURSE "${tmp}" "${unpacked}")
    file(ARCHIVE_EXTRACT INPUT "${tarball}" DESTINATION "${tmp}")
    file(RENAME "${tmp}/${name}-${version}" "${unpacked}")
    file(REMOVE_RECURSE "${tmp}")
    file(TOUCH "${unpacked}/.complete")
    set(${out_var} "${unpacked}" PARENT_SCOPE)
endfunction()
