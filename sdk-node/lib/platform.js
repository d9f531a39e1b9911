'use strict'
// napi-rs's name for the platform this process runs on, which names the
// prebuilt addon package (zerorelay-linux-x64-gnu, ...) and the addon file.

/** linux-x64-gnu, linux-arm64-musl, darwin-arm64, win32-x64-msvc, ... */
function platformName () {
  let name = `${process.platform}-${process.arch}`
  if (process.platform === 'linux') {
    const glibc = process.report && process.report.getReport().header.glibcVersionRuntime
    name += glibc ? '-gnu' : '-musl'
  } else if (process.platform === 'win32') {
    name += '-msvc'
  }
  return name
}

module.exports = { platformName }
