#!/usr/bin/env pwsh
# Thin wrapper over the README's steps: the native library with CMake (only where CUDA is present),
# then the managed solution. Usage: ./build.ps1 [-Test] [-Arch 90a]
param([switch]$Test, [string]$Arch = "90a")
$ErrorActionPreference = "Stop"
Set-Location $PSScriptRoot
if (Get-Command nvcc -ErrorAction SilentlyContinue) {
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "-DMP_CUDA_ARCHITECTURES=$Arch"
    if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
    cmake --build build
    if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
}
dotnet build Native.sln -c Release
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
if ($Test) { dotnet test tests/Tests.csproj -c Release; exit $LASTEXITCODE }
