# evwheel — the CMake package file `make install` puts in PREFIX/lib/cmake/evwheel, so that
#   find_package(evwheel 0.1 REQUIRED)
#   target_link_libraries(app PRIVATE evwheel::evwheel)
# works.  evwheel::evwheel is the installed static library with its include directory, C++17
# and Threads::Threads.  Paths are found from this file's own place (PREFIX/lib/cmake/evwheel),
# so a tree staged with DESTDIR or moved elsewhere works as it is.
include(CMakeFindDependencyMacro)
find_dependency(Threads)

get_filename_component(_evwheel_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
if(NOT TARGET evwheel::evwheel)
  add_library(evwheel::evwheel STATIC IMPORTED)
  set_target_properties(evwheel::evwheel PROPERTIES
    IMPORTED_LOCATION "${_evwheel_prefix}/lib/libevwheel.a"
    INTERFACE_INCLUDE_DIRECTORIES "${_evwheel_prefix}/include"
    INTERFACE_COMPILE_FEATURES cxx_std_17
    INTERFACE_LINK_LIBRARIES Threads::Threads)
endif()
unset(_evwheel_prefix)
